#ifndef MESHD_GUARD_INTERNAL_H
#define MESHD_GUARD_INTERNAL_H
#include "shim.h"
#include "lua_guard.h"

/* Hook events come every this many instructions (every one once a slice is over). */
#define MESHD_GUARD_HOOK_EVERY 1000
/* Loops in the guarded C functions look at the clock every this many steps. */
#define MESHD_GUARD_CHECK_EVERY 4096

void meshd_guard_hook(lua_State *L, lua_Debug *ar);
/* Raises the slice's error if it is over (time, budget or the watchdog); else returns. */
void meshd_guard_check(lua_State *L);
/* Ends the slice now: every further hook event on `L` raises. Does not return. */
int meshd_guard_trip(lua_State *L, meshd_vm_ctl *c, int why);

void meshd_guard_open_patterns(lua_State *L);
void meshd_guard_open_tables(lua_State *L);
void meshd_guard_open_coroutines(lua_State *L);

/* Replaces `lib[name]` by the C closure `fn` with the original function as upvalue 1. */
void meshd_guard_wrap(lua_State *L, const char *lib, const char *name, lua_CFunction fn);

#endif
