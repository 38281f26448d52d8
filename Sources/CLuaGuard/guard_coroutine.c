/* coroutine.resume / wrap / close and xpcall.
   - A script may neither resume nor close a request handler's coroutine (one it got from
     coroutine.running() in another request would otherwise answer that request's body()
     with its own values).
   - The coroutine running is the one the watchdog interrupts.
   - Lua runs no code of a coroutine that a limit ended: the hook raises from inside the
     hook, and Lua leaves hooks off in that coroutine until a pcall in it catches the error.
     So xpcall's message handler is skipped once the slice is over, and a coroutine that
     died that way is never closed (its __close handlers would run without hooks): the
     stock coroutine.wrap closes it, this one does not. */
#include "guard.h"

static const char handler_set_key = 0;
static const char ended_set_key = 0;

/* A weak-keyed set of threads in the registry, made on first use. */
static void push_set(lua_State *L, const void *key) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

static void add_to_set(lua_State *L, const void *key, int index) {
    index = lua_absindex(L, index);
    push_set(L, key);
    lua_pushvalue(L, index);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static int in_set(lua_State *L, const void *key, int index) {
    index = lua_absindex(L, index);
    push_set(L, key);
    lua_pushvalue(L, index);
    int found = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return found;
}

void meshd_guard_mark_handler(lua_State *L) { add_to_set(L, &handler_set_key, -1); }

static int slice_ended(meshd_vm_ctl *c) { return c->trip != MESHD_TRIP_NONE || c->interrupted; }

/* Runs `co` with the `nargs` values on top of L; afterwards, on success, its results are
   on L and the count is returned; on an error, the error object is on L and -1 returned. */
static int run_coroutine(lua_State *L, lua_State *co, int co_index, int nargs) {
    meshd_vm_ctl *c = meshd_ctl(L);
    if (!lua_checkstack(co, nargs)) {
        lua_pop(L, nargs);
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    if (slice_ended(c)) lua_sethook(co, meshd_guard_hook, LUA_MASKCOUNT, 1);
    lua_xmove(L, co, nargs);
    lua_State *outer = c->running;
    c->running = co;
    int nres = 0;
    int status = lua_resume(co, L, nargs, &nres);
    c->running = outer;
    if (slice_ended(c)) {
        /* The slice ended inside `co`: this coroutine raises at its next instruction. */
        lua_sethook(L, meshd_guard_hook, LUA_MASKCOUNT, 1);
        if (status != LUA_OK && status != LUA_YIELD) add_to_set(L, &ended_set_key, co_index);
    }
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

static int guarded_resume(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    if (in_set(L, &handler_set_key, 1)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume a request handler's coroutine");
        return 2;
    }
    int n = run_coroutine(L, co, 1, lua_gettop(L) - 1);
    if (n < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(n + 1));
    return n + 1;
}

/* The function coroutine.wrap returns; upvalue 1 is its coroutine. */
static int wrapped_call(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int n = run_coroutine(L, co, lua_upvalueindex(1), lua_gettop(L));
    if (n >= 0) return n;
    int status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD && !slice_ended(meshd_ctl(L))) {
        status = meshd_lua_closethread(co);  /* its __close handlers, as the stock wrap does */
        lua_xmove(co, L, 1);
    }
    if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int guarded_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, wrapped_call, 1);
    return 1;
}

static int guarded_close(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    if (in_set(L, &handler_set_key, 1)) return luaL_error(L, "cannot close a request handler's coroutine");
    if (in_set(L, &ended_set_key, 1)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "coroutine ended by the plugin's limits (its __close handlers do not run)");
        return 2;
    }
    meshd_vm_ctl *c = meshd_ctl(L);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_State *outer = c->running;
    c->running = co;
    int status = lua_pcall(L, 1, LUA_MULTRET, 0);
    c->running = outer;
    if (slice_ended(c)) lua_sethook(L, meshd_guard_hook, LUA_MASKCOUNT, 1);
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

/* xpcall's message handler: the script's, unless the slice is over (then hooks may be off
   and the handler could loop for good). */
static int guarded_handler(lua_State *L) {
    if (meshd_ctl(L)->trip != MESHD_TRIP_NONE) {
        lua_settop(L, 1);
        return 1;
    }
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, 1);
    return 1;
}

static int xpcall_done(lua_State *L, int status, lua_KContext ctx) {
    (void)status;
    (void)ctx;
    return lua_gettop(L);
}

static int guarded_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    /* With a continuation: the protected function may wait (body(), httpCall()). */
    lua_callk(L, n, LUA_MULTRET, 0, xpcall_done);
    return xpcall_done(L, LUA_OK, 0);
}

void meshd_guard_open_coroutines(lua_State *L) {
    meshd_guard_wrap(L, "coroutine", "resume", guarded_resume);
    meshd_guard_wrap(L, "coroutine", "close", guarded_close);
    lua_getglobal(L, "coroutine");
    lua_pushcfunction(L, guarded_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 1);
    meshd_guard_wrap(L, "_G", "xpcall", guarded_xpcall);
}
