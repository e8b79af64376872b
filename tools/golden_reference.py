#!/usr/bin/env python3
"""Write golden FP32 cases for your own Kronos checkpoints, by running the reference implementation.

    tools/golden_reference.py --kronos ~/src/Kronos --tokenizer tok/ --predictor model/ \
        --data candles.csv --case btc_a --start-row 1000 --lookback 512 --pred-len 48 \
        --max-context 512 OUT_DIR

Imports the reference PyTorch code from your checkout of shiyu-coder/Kronos (the `model` package
under --kronos; it is not part of this repository), runs a greedy (top-k 1) forecast of the rows
start_row ..< start_row + lookback of --data, and writes, in the layout of ../shared/reference/<model>
(KRONOS.md §7), which `kronos-run verify BUNDLE --golden OUT_DIR` reads:

    OUT_DIR/tokenizer/, OUT_DIR/predictor/        copies of the checkpoints (config.json + weights)
    OUT_DIR/cases/<case>.json                      the case's settings
    OUT_DIR/cases/<case>.safetensors               x_norm, x_stamp, y_stamp, mean, std, context ids,
                                                   context_recon, step logits, generated ids, forecast
    OUT_DIR/cases/<case>_input.csv, _forecast.csv  the input rows and the denormalized forecast

Run it several times with different --case / --start-row to build a set of cases.
Needs: torch, numpy, pandas, and what the reference's `model` package imports (einops,
huggingface_hub, safetensors).
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

COLUMNS = ["open", "high", "low", "close", "volume", "amount"]
TIME_COLUMNS = ["timestamps", "timestamp", "date", "time"]


def save_safetensors(path, tensors):
    """tensors: dict name -> numpy array (float32 or int64), written in name order."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[a.dtype]
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def time_features(ts):
    """(minute, hour, weekday with Monday = 0, day, month) per timestamp, float32 [n, 5]."""
    return np.stack([ts.dt.minute, ts.dt.hour, ts.dt.dayofweek, ts.dt.day, ts.dt.month], axis=1).astype(np.float32)


def copy_checkpoint(src, dst):
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name == "config.json" or name.endswith(".safetensors") or name.endswith(".safetensors.index.json"):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kronos", required=True, help="path of your shiyu-coder/Kronos checkout (holds model/)")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--predictor", required=True)
    ap.add_argument("--data", required=True, help="candle CSV with a timestamp column and open, high, low, close[, volume, amount]")
    ap.add_argument("--case", required=True, help="case name, e.g. btc_a")
    ap.add_argument("--start-row", type=int, default=0)
    ap.add_argument("--lookback", type=int, required=True)
    ap.add_argument("--pred-len", type=int, required=True)
    ap.add_argument("--max-context", type=int, default=512)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("out_dir")
    args = ap.parse_args()

    sys.path.insert(0, os.path.abspath(args.kronos))
    import pandas as pd
    import torch
    from model import Kronos, KronosTokenizer  # the reference implementation, from the user's checkout

    torch.set_grad_enabled(False)
    tokenizer = KronosTokenizer.from_pretrained(args.tokenizer).eval()
    model = Kronos.from_pretrained(args.predictor).eval()

    df = pd.read_csv(args.data)
    tcol = next((c for c in TIME_COLUMNS if c in df.columns), None)
    if tcol is None:
        sys.exit(f"{args.data}: no timestamp column (one of {TIME_COLUMNS})")
    df[tcol] = pd.to_datetime(df[tcol])
    rows = df.iloc[args.start_row:args.start_row + args.lookback].reset_index(drop=True)
    if len(rows) != args.lookback:
        sys.exit(f"{args.data}: rows {args.start_row}..{args.start_row + args.lookback} run past the {len(df)} rows of the file")
    # Column fill rules of KRONOS.md §5.1.
    if "volume" not in rows.columns:
        rows["volume"] = 0.0
        rows["amount"] = 0.0
    if "amount" not in rows.columns:
        rows["amount"] = rows["volume"] * rows[["open", "high", "low", "close"]].mean(axis=1)
    step = rows[tcol].diff().dropna().mode().iloc[0]
    future = pd.Series([rows[tcol].iloc[-1] + step * (k + 1) for k in range(args.pred_len)])

    x = rows[COLUMNS].values.astype(np.float32)
    x_stamp, y_stamp = time_features(rows[tcol]), time_features(future)
    mean, std = np.mean(x, axis=0), np.std(x, axis=0)
    x_norm = np.clip((x - mean) / (std + 1e-5), -args.clip, args.clip).astype(np.float32)

    T, P, M = args.lookback, args.pred_len, args.max_context
    ids = tokenizer.encode(torch.from_numpy(x_norm)[None], half=True)
    s1, s2 = ids[0][0].tolist(), ids[1][0].tolist()
    keep = min(T, M)
    recon = tokenizer.decode([ids[0][:, -keep:], ids[1][:, -keep:]], half=True)[0].numpy()

    stamps = torch.from_numpy(np.concatenate([x_stamp, y_stamp]))[None]
    step_s1, step_s2 = [], []
    for i in range(P):
        n = T + i
        lo = max(0, n - M)
        w1 = torch.tensor(s1[lo:n])[None]
        w2 = torch.tensor(s2[lo:n])[None]
        logits1, context = model.decode_s1(w1, w2, stamps[:, lo:n].contiguous())
        l1 = logits1[0, -1]
        pick1 = int(torch.argmax(l1))  # top-k 1 (greedy)
        logits2 = model.decode_s2(context, torch.tensor([[pick1]]))
        l2 = logits2[0, -1]
        pick2 = int(torch.argmax(l2))
        step_s1.append(l1.numpy().copy())
        step_s2.append(l2.numpy().copy())
        s1.append(pick1)
        s2.append(pick2)
    keep = min(T + P, M)
    decoded = tokenizer.decode([torch.tensor(s1[-keep:])[None], torch.tensor(s2[-keep:])[None]], half=True)[0].numpy()
    forecast = (decoded[-P:] * (std + 1e-5) + mean).astype(np.float32)

    out = args.out_dir
    copy_checkpoint(args.tokenizer, os.path.join(out, "tokenizer"))
    copy_checkpoint(args.predictor, os.path.join(out, "predictor"))
    cases = os.path.join(out, "cases")
    os.makedirs(cases, exist_ok=True)
    settings = {"data": os.path.basename(args.data), "start_row": args.start_row, "lookback": T, "pred_len": P,
                "max_context": M, "clip": args.clip, "T": 1.0, "top_k": 1, "top_p": 1.0, "sample_count": 1,
                "columns": COLUMNS, "time_features": ["minute", "hour", "weekday", "day", "month"]}
    with open(os.path.join(cases, f"{args.case}.json"), "w") as f:
        json.dump(settings, f, indent=2)
    save_safetensors(os.path.join(cases, f"{args.case}.safetensors"), {
        "x_norm": x_norm, "x_stamp": x_stamp, "y_stamp": y_stamp, "mean": mean.astype(np.float32),
        "std": std.astype(np.float32), "context_s1": np.array(s1[:T], dtype=np.int64),
        "context_s2": np.array(s2[:T], dtype=np.int64), "context_recon": recon.astype(np.float32),
        "step_s1_logits": np.stack(step_s1).astype(np.float32), "step_s2_logits": np.stack(step_s2).astype(np.float32),
        "gen_s1": np.array(s1[T:], dtype=np.int64), "gen_s2": np.array(s2[T:], dtype=np.int64), "forecast": forecast,
    })
    inp = rows[[tcol] + COLUMNS].rename(columns={tcol: "timestamps"})
    inp.to_csv(os.path.join(cases, f"{args.case}_input.csv"), index=False)
    fc = pd.DataFrame(forecast, columns=COLUMNS)
    fc.insert(0, "timestamps", future.dt.strftime("%Y-%m-%d %H:%M:%S"))
    fc.to_csv(os.path.join(cases, f"{args.case}_forecast.csv"), index=False)
    print(f"wrote {os.path.join(cases, args.case)}.* ({T} rows, {P} steps, max context {M})")


if __name__ == "__main__":
    main()
