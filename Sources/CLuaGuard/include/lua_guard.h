#ifndef MESHD_LUA_GUARD_H
#define MESHD_LUA_GUARD_H
/* The limits that keep a plugin from stalling its event loop: an instruction budget and a
   time bound per slice (the code between two suspensions) that no pcall can swallow, a
   watchdog thread that interrupts a slice over its time, and library functions that
   cannot run unbounded in C (patterns, string.rep, table.insert/remove/move) or behind the
   hook's back (finalizers). See docs/reliability.md. */
#include <stdint.h>

struct lua_State;

/* A new state allocating through `ctl` (a meshd_vm_ctl), with the guard's hook installed. */
struct lua_State *meshd_guard_newstate(void *ctl);

/* Replaces the library functions the guard covers; call after the standard libraries. */
void meshd_guard_open(struct lua_State *L);

/* Marks the thread on top of L's stack as a stream's handler coroutine: only the host may
   resume or close it (a script that got it from coroutine.running() cannot). */
void meshd_guard_mark_handler(struct lua_State *L);

/* Starts a slice on the calling thread running `thread`: `budget` instructions and `ms`
   milliseconds (0 = no time bound). Returns the CLOCK_MONOTONIC time it started at. */
uint64_t meshd_guard_arm(void *ctl, struct lua_State *thread, long long budget, uint64_t ms);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t meshd_guard_now_ns(void);

/* A few (plugin version, event loop) -> VM lookups made on the calling thread: the Lua filter
   asks once per stream, and the locked table behind it is shared by every loop. The keys
   are never reused (version ids count up; a loop's id is its object's address, as in that
   table); `vm` is unretained, kept alive by the version. */
typedef struct meshd_vm_cache_entry {
    uint64_t version;
    uintptr_t loop;
    void *vm;
} meshd_vm_cache_entry;
#define MESHD_VM_CACHE_ENTRIES 4
meshd_vm_cache_entry *meshd_vm_cache(void);

/* Ends the slice (what ended it, if anything, stays in ctl->trip until the next arm). */
void meshd_guard_disarm(void *ctl);

/* For host code that loops (JSON): 1 when the slice is over its time; the trip is set. */
int meshd_guard_expired(void *ctl);

/* Signals sent by the watchdog so far (tests and diagnostics). */
uint64_t meshd_guard_interrupts(void);

#endif
