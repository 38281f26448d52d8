/* coroutine.resume / wrap / close: a script may neither resume nor close a request
   handler's coroutine (one it got from coroutine.running() in another request would
   otherwise answer that request's body() with its own values), and the coroutine it runs
   is the one the watchdog interrupts. */
#include "guard.h"

static const char handler_set_key = 0;

/* The set of handler coroutines (weak keys), made on first use. */
static void push_handler_set(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &handler_set_key) == LUA_TTABLE) return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &handler_set_key);
}

void meshd_guard_mark_handler(lua_State *L) {
    push_handler_set(L);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static int is_handler(lua_State *L, int index) {
    push_handler_set(L);
    lua_pushvalue(L, index);
    int found = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return found;
}

static int slice_ended(meshd_vm_ctl *c) { return c->trip != MESHD_TRIP_NONE || c->interrupted; }

/* Calls upvalue 1 with this call's arguments while `co` runs. */
static int call_in(lua_State *L, lua_State *co) {
    meshd_vm_ctl *c = meshd_ctl(L);
    int nargs = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    if (slice_ended(c)) lua_sethook(co, meshd_guard_hook, LUA_MASKCOUNT, 1);
    lua_State *outer = c->running;
    c->running = co;
    int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
    c->running = outer;
    /* The slice ended inside `co`: this coroutine raises at its next instruction. */
    if (slice_ended(c)) lua_sethook(L, meshd_guard_hook, LUA_MASKCOUNT, 1);
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int guarded_resume(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    if (is_handler(L, 1)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume a request handler's coroutine");
        return 2;
    }
    return call_in(L, co);
}

static int guarded_close(lua_State *L) {
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    if (is_handler(L, 1)) return luaL_error(L, "cannot close a request handler's coroutine");
    return call_in(L, co);
}

/* The function coroutine.wrap returned (upvalue 1) and its coroutine (upvalue 2). */
static int wrapped_call(lua_State *L) { return call_in(L, lua_tothread(L, lua_upvalueindex(2))); }

static int guarded_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, 1);
    /* The stock wrapper keeps its coroutine as upvalue 1. */
    if (lua_getupvalue(L, -1, 1) == NULL) return 1;
    if (lua_type(L, -1) != LUA_TTHREAD) {
        lua_pop(L, 1);
        return 1;
    }
    lua_pushcclosure(L, wrapped_call, 2);
    return 1;
}

void meshd_guard_open_coroutines(lua_State *L) {
    meshd_guard_wrap(L, "coroutine", "resume", guarded_resume);
    meshd_guard_wrap(L, "coroutine", "wrap", guarded_wrap);
    meshd_guard_wrap(L, "coroutine", "close", guarded_close);
}
