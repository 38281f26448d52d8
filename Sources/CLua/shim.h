#ifndef MESHD_CLUA_SHIM_H
#define MESHD_CLUA_SHIM_H
/* Debian installs Lua 5.4's headers in /usr/include/lua5.4 (pkg-config lua5.4). */
#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- Macros Swift cannot import. ---- */
static inline int meshd_lua_pcall(lua_State *L, int n, int r, int f) { return lua_pcall(L, n, r, f); }
static inline void meshd_lua_call(lua_State *L, int n, int r) { lua_call(L, n, r); }
static inline const char *meshd_lua_tostring(lua_State *L, int i) { return lua_tostring(L, i); }
static inline void meshd_lua_pop(lua_State *L, int n) { lua_pop(L, n); }
static inline void meshd_lua_newtable(lua_State *L) { lua_newtable(L); }
static inline int meshd_lua_isnil(lua_State *L, int i) { return lua_isnil(L, i); }
static inline int meshd_lua_isnoneornil(lua_State *L, int i) { return lua_isnoneornil(L, i); }
static inline lua_Number meshd_lua_tonumber(lua_State *L, int i) { return lua_tonumber(L, i); }
static inline lua_Integer meshd_lua_tointeger(lua_State *L, int i) { return lua_tointeger(L, i); }
static inline int meshd_lua_upvalueindex(int i) { return lua_upvalueindex(i); }
static inline int meshd_lua_registryindex(void) { return LUA_REGISTRYINDEX; }
static inline void meshd_lua_replace(lua_State *L, int i) { lua_replace(L, i); }
static inline void meshd_lua_insert(lua_State *L, int i) { lua_insert(L, i); }
static inline void meshd_lua_remove(lua_State *L, int i) { lua_remove(L, i); }
static inline void *meshd_lua_newuserdata(lua_State *L, size_t n) { return lua_newuserdatauv(L, n, 0); }
static inline int meshd_luaL_dostring(lua_State *L, const char *s) { return luaL_dostring(L, s); }
static inline int meshd_luaL_loadbuffer(lua_State *L, const char *b, size_t n, const char *name) {
    return luaL_loadbufferx(L, b, n, name, "t");
}
static inline void meshd_luaL_getmetatable(lua_State *L, const char *n) { luaL_getmetatable(L, n); }
static inline int meshd_lua_gc(lua_State *L, int what, int a, int b) { return lua_gc(L, what, a, b); }
static inline int meshd_lua_yield(lua_State *L, int n) { return lua_yield(L, n); }
/* 5.4.6 renamed lua_resetthread; either closes a dead or suspended coroutine for reuse. */
static inline int meshd_lua_closethread(lua_State *L) {
#if LUA_VERSION_RELEASE_NUM >= 50406
    return lua_closethread(L, NULL);
#else
    return lua_resetthread(L);
#endif
}

/* ---- Per-VM limits, reached from the allocator's ud and the state's extra space.
   The instruction hook, the time bound and its watchdog live in CLuaGuard. ---- */

/* Which limit ended the current slice. Sticky: once set, every hook event raises again
   until the next slice is armed, so no pcall can swallow it. */
#define MESHD_TRIP_NONE 0
#define MESHD_TRIP_BUDGET 1
#define MESHD_TRIP_TIME 2

typedef struct meshd_vm_ctl {
    size_t used;          /* bytes allocated by this state */
    size_t limit;         /* cap on `used` while Lua code runs */
    int enforce;          /* the cap applies only while Lua code runs, never inside host code */
    int trip;             /* MESHD_TRIP_*: the limit that ended this slice */
    long long budget;     /* instructions left in this slice */
    void *host;           /* the Swift LuaVM, unretained */
    unsigned long long deadline_ns;  /* CLOCK_MONOTONIC end of this slice; 0 = none */
    unsigned long long slice_ms;     /* the time bound, for the message */
    volatile int interrupted;        /* the watchdog found this slice over its time */
    lua_State *running;              /* the coroutine executing now: the watchdog hooks it */
    void *slot;                      /* the watchdog's entry for the thread running the slice */
    void *outer_ctl;                 /* a slice armed on the same thread around this one */
    unsigned long long outer_deadline_ns;
} meshd_vm_ctl;

static inline meshd_vm_ctl *meshd_ctl(lua_State *L) { return *(meshd_vm_ctl **)lua_getextraspace(L); }

static inline void *meshd_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    meshd_vm_ctl *c = (meshd_vm_ctl *)ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        c->used -= old;
        return NULL;
    }
    if (c->enforce && nsize > old && c->used - old + nsize > c->limit) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) c->used = c->used - old + nsize;
    return p;
}

/* Pushes the message of the limit that ended the slice (past the memory cap: the message
   must not turn into "not enough memory"). */
static inline void meshd_push_trip(lua_State *L, meshd_vm_ctl *c) {
    int enforce = c->enforce;
    c->enforce = 0;
    if (c->trip == MESHD_TRIP_TIME) {
        lua_pushfstring(L, "time budget exceeded (%d ms)", (int)c->slice_ms);
    } else {
        lua_pushliteral(L, "instruction budget exceeded");
    }
    c->enforce = enforce;
}

/* ---- Host (Swift) functions. They never raise or yield themselves: a longjmp across
   Swift frames is undefined. They return a result count, or one of these codes and the
   C trampoline raises (message on top of the stack) or yields for them. ---- */
#define MESHD_RAISE (-1)
#define MESHD_YIELD (-2)
typedef int (*meshd_host_fn)(lua_State *L);

static inline int meshd_trampoline(lua_State *L) {
    meshd_host_fn f = (meshd_host_fn)lua_touserdata(L, lua_upvalueindex(1));
    meshd_vm_ctl *c = meshd_ctl(L);
    int enforce = c->enforce;
    c->enforce = 0;
    int n = f(L);
    c->enforce = enforce;
    if (n == MESHD_RAISE) return lua_error(L);
    if (n == MESHD_YIELD) return lua_yield(L, 0);
    return n;
}

/* Pushes a Lua function calling `f`, with `nup` values from the stack as upvalues 2... */
static inline void meshd_pushhostfn(lua_State *L, meshd_host_fn f, int nup) {
    lua_pushlightuserdata(L, (void *)f);
    if (nup > 0) lua_insert(L, -(nup + 1));
    lua_pushcclosure(L, meshd_trampoline, nup + 1);
}

/* Every meshd userdata starts with this; `kind` tells what it is. */
typedef struct meshd_obj {
    uint32_t kind;
    uint32_t slot;        /* which running script (an index into the VM's slot table) */
    uint64_t gen;         /* that run's generation: a stale object fails the check */
    uint64_t aux;         /* per-kind extra (chunk serial, shared-dict index) */
    void *ptr;            /* per-kind pointer (EVP_PKEY for public keys) */
} meshd_obj;

#endif
