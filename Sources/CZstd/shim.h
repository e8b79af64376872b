// libzstd from the system (Debian: libzstd-dev, pkg-config name libzstd).
#include <zstd.h>
