#ifndef MESHD_CYAML_SHIM_H
#define MESHD_CYAML_SHIM_H
/* libyaml (Debian libyaml-dev, pkg-config yaml-0.1): the parser and emitter Sources/YAML wraps. */
#include <yaml.h>
#endif
