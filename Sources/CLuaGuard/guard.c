/* The slice limits: the instruction hook, arming a slice, and the watchdog that interrupts
   a slice over its time. See guard.h and docs/reliability.md. */
#define _GNU_SOURCE
#include "guard.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

uint64_t meshd_guard_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- Ending a slice ---- */

int meshd_guard_trip(lua_State *L, meshd_vm_ctl *c, int why) {
    if (c->trip == MESHD_TRIP_NONE) c->trip = why;
    /* From now on every instruction of this coroutine raises again: whatever catches the
       error (pcall, xpcall, coroutine.resume) gets one more instruction at most. */
    lua_sethook(L, meshd_guard_hook, LUA_MASKCOUNT, 1);
    meshd_push_trip(L, c);
    return lua_error(L);
}

static int slice_over(meshd_vm_ctl *c) {
    return c->interrupted || (c->deadline_ns != 0 && meshd_guard_now_ns() >= c->deadline_ns);
}

void meshd_guard_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    meshd_vm_ctl *c = meshd_ctl(L);
    if (c->trip == MESHD_TRIP_NONE) {
        c->budget -= lua_gethookcount(L);
        if (c->budget > 0 && !slice_over(c)) return;
        c->trip = c->budget <= 0 ? MESHD_TRIP_BUDGET : MESHD_TRIP_TIME;
    }
    meshd_guard_trip(L, c, c->trip);
}

void meshd_guard_check(lua_State *L) {
    meshd_vm_ctl *c = meshd_ctl(L);
    if (c->trip != MESHD_TRIP_NONE) meshd_guard_trip(L, c, c->trip);
    if (slice_over(c)) meshd_guard_trip(L, c, MESHD_TRIP_TIME);
}

int meshd_guard_expired(void *ctl) {
    meshd_vm_ctl *c = ctl;
    if (c->trip == MESHD_TRIP_NONE) {
        if (!slice_over(c)) return 0;
        c->trip = MESHD_TRIP_TIME;
    }
    if (c->running) lua_sethook(c->running, meshd_guard_hook, LUA_MASKCOUNT, 1);
    return 1;
}

/* ---- The watchdog: one thread per process. Each thread that runs slices has a slot with
   the deadline of the slice it runs now; a slice past it gets SIGURG, whose handler (on
   that very thread, so the Lua state is not being changed under it) sets the running
   coroutine's hook to fire at the next instruction, as lua.c does for SIGINT. ---- */

#define GUARD_SLOTS 512
#define GUARD_TICK_NS 10000000L

typedef struct guard_slot {
    pthread_t thread;
    _Atomic uint64_t deadline_ns;          /* 0: no slice with a time bound armed */
    _Atomic(meshd_vm_ctl *) ctl;
} guard_slot;

static guard_slot slots[GUARD_SLOTS];
static _Atomic int slot_count;
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t watchdog_once = PTHREAD_ONCE_INIT;
static _Thread_local guard_slot *thread_slot;
static _Atomic uint64_t interrupts;

uint64_t meshd_guard_interrupts(void) { return atomic_load(&interrupts); }

static void on_interrupt(int sig) {
    (void)sig;
    int saved = errno;
    pthread_t self = pthread_self();
    int n = atomic_load(&slot_count);
    for (int i = 0; i < n; i++) {
        if (!pthread_equal(slots[i].thread, self)) continue;
        uint64_t deadline = atomic_load(&slots[i].deadline_ns);
        meshd_vm_ctl *c = atomic_load(&slots[i].ctl);
        if (deadline != 0 && c != NULL && meshd_guard_now_ns() >= deadline) {
            c->interrupted = 1;
            if (c->running) lua_sethook(c->running, meshd_guard_hook, LUA_MASKCOUNT, 1);
        }
        break;
    }
    errno = saved;
}

static void *watchdog_main(void *arg) {
    (void)arg;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGURG);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    struct timespec tick = {0, GUARD_TICK_NS};
    for (;;) {
        nanosleep(&tick, NULL);
        uint64_t now = meshd_guard_now_ns();
        int n = atomic_load(&slot_count);
        for (int i = 0; i < n; i++) {
            uint64_t deadline = atomic_load(&slots[i].deadline_ns);
            if (deadline == 0 || now < deadline) continue;
            /* Again each tick while it lasts: a hook set on a coroutine that then finished
               is set again on the one running now. */
            pthread_kill(slots[i].thread, SIGURG);
            atomic_fetch_add(&interrupts, 1);
        }
    }
    return NULL;
}

static void start_watchdog(void) {
    struct sigaction sa;
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGURG, &sa, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    pthread_create(&t, &attr, watchdog_main, NULL);
    pthread_attr_destroy(&attr);
}

/* The calling thread's slot, made on first use; NULL when the table is full (the hook's
   own clock check still bounds slices there, at hook granularity). */
static guard_slot *current_slot(void) {
    if (thread_slot) return thread_slot;
    pthread_once(&watchdog_once, start_watchdog);
    pthread_t self = pthread_self();
    pthread_mutex_lock(&slot_lock);
    int n = atomic_load(&slot_count);
    guard_slot *found = NULL;
    for (int i = 0; i < n && !found; i++) {
        /* A thread id is reused only after its thread ended: the slot is free again. */
        if (pthread_equal(slots[i].thread, self)) found = &slots[i];
    }
    if (!found && n < GUARD_SLOTS) {
        found = &slots[n];
        found->thread = self;
        atomic_store(&found->deadline_ns, 0);
        atomic_store(&found->ctl, NULL);
        atomic_store(&slot_count, n + 1);
    }
    pthread_mutex_unlock(&slot_lock);
    thread_slot = found;
    return found;
}

/* ---- Slices ---- */

uint64_t meshd_guard_arm(void *ctl, lua_State *thread, long long budget, uint64_t ms) {
    meshd_vm_ctl *c = ctl;
    uint64_t now = meshd_guard_now_ns();
    c->budget = budget;
    c->trip = MESHD_TRIP_NONE;
    c->interrupted = 0;
    c->running = thread;
    c->slice_ms = ms;
    c->deadline_ns = ms ? now + ms * 1000000u : 0;
    /* A reused coroutine may still have the every-instruction hook of an earlier trip. */
    lua_sethook(thread, meshd_guard_hook, LUA_MASKCOUNT, MESHD_GUARD_HOOK_EVERY);
    guard_slot *s = current_slot();
    c->slot = s;
    if (!s) return now;
    c->outer_ctl = atomic_load(&s->ctl);
    c->outer_deadline_ns = atomic_load(&s->deadline_ns);
    /* The signal handler reads the deadline first: never a new deadline with an old ctl. */
    atomic_store(&s->deadline_ns, 0);
    atomic_store(&s->ctl, c);
    atomic_store(&s->deadline_ns, c->deadline_ns);
    return now;
}

void meshd_guard_disarm(void *ctl) {
    meshd_vm_ctl *c = ctl;
    guard_slot *s = c->slot;
    if (s) {
        atomic_store(&s->deadline_ns, 0);
        atomic_store(&s->ctl, (meshd_vm_ctl *)c->outer_ctl);
        atomic_store(&s->deadline_ns, c->outer_deadline_ns);
    }
    c->slot = NULL;
    c->outer_ctl = NULL;
    c->running = NULL;
    c->deadline_ns = 0;
}

static _Thread_local meshd_vm_cache_entry vm_cache[MESHD_VM_CACHE_ENTRIES];

meshd_vm_cache_entry *meshd_vm_cache(void) { return vm_cache; }

/* ---- The state and the library functions the guard replaces ---- */

lua_State *meshd_guard_newstate(void *ctl) {
    meshd_vm_ctl *c = ctl;
    lua_State *L = lua_newstate(meshd_alloc, c);
    if (!L) return NULL;
    *(meshd_vm_ctl **)lua_getextraspace(L) = c;
    /* Until the first slice (the sandbox's own setup) nothing is bounded but memory. */
    c->budget = LLONG_MAX;
    lua_sethook(L, meshd_guard_hook, LUA_MASKCOUNT, MESHD_GUARD_HOOK_EVERY);
    return L;
}

void meshd_guard_wrap(lua_State *L, const char *lib, const char *name, lua_CFunction fn) {
    lua_getglobal(L, lib);
    lua_getfield(L, -1, name);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

/* Finalizers run with hooks off, so a looping __gc would hold the loop for good. LuaJIT
   (Envoy's Lua) never runs __gc on tables either. Checked when the metatable is set: a
   __gc added later does not make Lua finalize the object. */
static int guarded_setmetatable(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL) {
            return luaL_error(L, "__gc metamethods are not allowed (finalizers would run outside the plugin's limits)");
        }
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* string.rep: the stock one copies an empty string n times (2^63 for math.maxinteger).
   Here: the first copy (with its separator), then the filled part doubled until done. */
static int guarded_rep(lua_State *L) {
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    if (l + lsep < l || l + lsep > (size_t)INT_MAX / (size_t)n) return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * l + (size_t)(n - 1) * lsep;
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, total);
    memcpy(p, s, l);
    size_t filled = l;
    if (n > 1) {
        memcpy(p + l, sep, lsep);
        filled += lsep;
    }
    /* `filled` is a whole number of copies (each with its separator): doubling it keeps
       the pattern, and the last copy's separator falls past `total`. */
    while (filled < total) {
        size_t chunk = filled < total - filled ? filled : total - filled;
        memcpy(p + filled, p, chunk);
        filled += chunk;
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

void meshd_guard_open(lua_State *L) {
    meshd_guard_wrap(L, "_G", "setmetatable", guarded_setmetatable);
    lua_getglobal(L, "string");
    lua_pushcfunction(L, guarded_rep);
    lua_setfield(L, -2, "rep");
    lua_pop(L, 1);
    meshd_guard_open_patterns(L);
    meshd_guard_open_tables(L);
    meshd_guard_open_coroutines(L);
}
