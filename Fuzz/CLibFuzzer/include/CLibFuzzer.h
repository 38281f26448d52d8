#include <stddef.h>
#include <stdint.h>

/* libFuzzer's driver, from the runtime that -sanitize=fuzzer links. The fuzz targets call it
   from their own main: SwiftPM links every executable with main aliased to <target>_main. */
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
