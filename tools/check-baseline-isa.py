#!/usr/bin/env python3
"""Checks, in a linked binary (kronos-run, kronos-convert, kronos-bench), that no instruction a
processor may lack is reached without the cpuid check that allows it.

    tools/check-baseline-isa.py .build/release/kronos-run [...]

Two walks over direct calls and jumps between the binary's Swift functions (shared specializations of
generic code included: a binary keeps one copy of each, whichever module's the linker met first):
- from every function of the modules without CPU flags (the bundle reader, the façade, the baseline
  engine, the CLIs, ...), which run on any x86-64: reported is each reached function with a VEX /
  EVEX-encoded instruction (AVX, AVX2, FMA, F16C, BMI1/2, AVX-512) or lzcnt, movbe, popcnt;
- from every function of KronosWideEngine, KronosWideQuant and KronosWideAVX2 (entered after the x86-64-v3 check):
  reported is each reached function with an EVEX-encoded (AVX-512) instruction.
The walks stop at the gated modules: KronosWideEngine and KronosWideAVX2 (Processor.runsNativeEngine), KronosWideQuant
(KronosConvert's Codecs.wide) for the first, KronosWideVNNI (Processor.hasAVX512VNNI) for both. Exit status 1 when anything is reported.
"""
import re
import subprocess
import sys
from collections import deque

# Mangled module prefixes (Swift: $s + <length><module name>).
# A function whose mangled name holds a module's name belongs to it: its own functions, the closures
# and thunks of its functions, generic code specialized for its types.
WIDE = ("16KronosWideEngine", "15KronosWideQuant", "14KronosWideAVX2")  # x86-64-v3
VNNI = "14KronosWideVNNI"  # AVX-512 VNNI
# (Not tzcnt: compilers emit it for x86-64 too, as its encoding runs as bsf where BMI1 is missing.)
EXTRA = {"lzcnt", "movbe", "popcnt"}
LEGACY_PREFIXES = {"66", "67", "f2", "f3", "2e", "36", "3e", "26", "64", "65", "f0"}
SPECIALIZATION = re.compile(r"T[gfs]\w*5(_|$)|Tgq5")


def functions(binary):
    """name -> (instructions [(bytes, mnemonic, text)], direct targets)"""
    out = subprocess.run(["objdump", "-d", "--no-addresses", binary], capture_output=True, text=True, check=True)
    funcs, cur = {}, None
    head = re.compile(r"^<(.+)>:$")
    for line in out.stdout.splitlines():
        m = head.match(line)
        if m:
            cur = funcs.setdefault(m.group(1), ([], set()))
            continue
        if cur is None or not line.startswith("\t"):
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        raw, text = parts[1].split(), parts[2].strip()
        mnemonic = text.split()[0] if text else ""
        cur[0].append((raw, mnemonic, text))
        t = re.search(r"<([^>+]+)(\+0x[0-9a-f]+)?>$", text)
        if t and (mnemonic.startswith("call") or mnemonic.startswith("j")):
            cur[1].add(t.group(1))
    return funcs


def first_opcode(raw):
    i = 0
    while i < len(raw) and raw[i] in LEGACY_PREFIXES:
        i += 1
    return raw[i] if i < len(raw) else ""


def beyond_x86_64(raw, mnemonic):
    """VEX (c4 / c5) or EVEX (62) encoded, or one of EXTRA."""
    return first_opcode(raw) in ("c4", "c5", "62") or mnemonic in EXTRA


def beyond_x86_64_v3(raw, mnemonic):
    """EVEX (62) encoded: AVX-512."""
    return first_opcode(raw) == "62"


def walk(funcs, roots, gated, bad_instruction, what):
    seen, queue, parent, problems = set(roots), deque(roots), {}, []
    while queue:
        f = queue.popleft()
        instructions, targets = funcs[f]
        bad = [text for raw, mnemonic, text in instructions if bad_instruction(raw, mnemonic)]
        if bad:
            problems.append((f, f"{len(bad)} instruction(s) beyond {what}, e.g. {bad[0]}"))
        for t in sorted(targets):
            if t in seen or not t.startswith("$s") or t not in funcs or any(g in t for g in gated):
                continue
            seen.add(t)
            parent[t] = f
            queue.append(t)
    return seen, problems, parent


def report(label, roots, seen, problems, parent):
    print(f"  {label}: {len(roots)} functions, {len(seen)} reached, {len(problems)} reported")
    for f, why in problems:
        chain, g = [], f
        while g in parent and len(chain) < 3:
            g = parent[g]
            chain.append(g)
        print(f"    {f}: {why}\n      reached from {' <- '.join(chain)}")


def main():
    failed = False
    for binary in sys.argv[1:]:
        funcs = functions(binary)
        swift = [f for f in funcs if f.startswith("$s") and not SPECIALIZATION.search(f)]
        plain = [f for f in swift if not any(m in f for m in (*WIDE, VNNI))]
        wide = [f for f in swift if any(m in f for m in WIDE) and VNNI not in f]
        print(binary)
        result = walk(funcs, plain, (*WIDE, VNNI), beyond_x86_64, "x86-64")
        report("code without CPU flags (any x86-64)", plain, *result)
        failed = failed or bool(result[1])
        if not wide:
            continue
        result = walk(funcs, wide, (VNNI,), beyond_x86_64_v3, "x86-64-v3")
        report("KronosWideEngine, KronosWideQuant, KronosWideAVX2 (x86-64-v3)", wide, *result)
        failed = failed or bool(result[1])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
