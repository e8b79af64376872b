// CKronosHints is header-only (include/KronosHints.h); SwiftPM needs one source file per C target.
#include "KronosHints.h"
