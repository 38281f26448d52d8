/* string.find / match / gmatch / gsub with Lua 5.4's pattern language and results, by a
   backtracking matcher that counts its work and looks at the clock as it goes: a pattern
   like ("a*"):rep(4) .. "b" against 300 "a"s backtracks for minutes in the stock one,
   all of it inside one C call that the instruction hook never sees. Here it ends with the
   slice's time budget like any other code. Plain searches use memmem (linear). */
#define _GNU_SOURCE
#include "guard.h"

#include <ctype.h>
#include <string.h>

#define L_ESC '%'
#define SPECIALS "^$*+?.([%-"
#define MAX_CAPTURES 32
#define MAX_DEPTH 200
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
/* Characters examined between two looks at the clock. */
#define WORK_PER_CHECK 65536

typedef struct Match {
    const char *src_init;
    const char *src_end;
    const char *p_end;
    lua_State *L;
    int depth;            /* recursion left ("pattern too complex" below zero) */
    int level;            /* captures opened so far */
    size_t work;          /* since the last look at the clock */
    struct {
        const char *init;
        ptrdiff_t len;    /* or CAP_UNFINISHED / CAP_POSITION */
    } capture[MAX_CAPTURES];
} Match;

static const char *do_match(Match *ms, const char *s, const char *p);

static inline void spend(Match *ms, size_t n) {
    ms->work += n;
    if (__builtin_expect(ms->work < WORK_PER_CHECK, 1)) return;
    ms->work = 0;
    meshd_guard_check(ms->L);
}

/* ---- Single items ---- */

static int class_matches(int c, int cl) {
    int res;
    switch (tolower(cl)) {
    case 'a': res = isalpha(c); break;
    case 'c': res = iscntrl(c); break;
    case 'd': res = isdigit(c); break;
    case 'g': res = isgraph(c); break;
    case 'l': res = islower(c); break;
    case 'p': res = ispunct(c); break;
    case 's': res = isspace(c); break;
    case 'u': res = isupper(c); break;
    case 'w': res = isalnum(c); break;
    case 'x': res = isxdigit(c); break;
    case 'z': res = (c == 0); break;  /* deprecated, still accepted by 5.4 */
    default: return cl == c;
    }
    return isupper(cl) ? !res : res;
}

/* A set `[...]` from its '[' at p to its ']' at close. */
static int set_matches(int c, const char *p, const char *close) {
    int positive = 1;
    if (*(p + 1) == '^') {
        positive = 0;
        p++;
    }
    while (++p < close) {
        if (*p == L_ESC) {
            p++;
            if (class_matches(c, (unsigned char)*p)) return positive;
        } else if (*(p + 1) == '-' && p + 2 < close) {
            p += 2;
            if ((unsigned char)*(p - 2) <= c && c <= (unsigned char)*p) return positive;
        } else if ((unsigned char)*p == c) {
            return positive;
        }
    }
    return !positive;
}

/* The end of the single item starting at p (a char, %x, or a set). */
static const char *item_end(Match *ms, const char *p) {
    char first = *p++;
    if (first == L_ESC) {
        if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (first == '[') {
        if (*p == '^') p++;
        do {  /* the first character of a set is itself even when it is ']' */
            if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*(p++) == L_ESC && p < ms->p_end) p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

static int single_matches(Match *ms, const char *s, const char *p, const char *ep) {
    if (s >= ms->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.': return 1;
    case L_ESC: return class_matches(c, (unsigned char)*(p + 1));
    case '[': return set_matches(c, p, ep - 1);
    default: return (unsigned char)*p == c;
    }
}

/* ---- Repetition, balance, captures ---- */

static const char *expand_max(Match *ms, const char *s, const char *p, const char *ep) {
    ptrdiff_t i = 0;
    while (single_matches(ms, s + i, p, ep)) i++;
    spend(ms, (size_t)i);
    for (; i >= 0; i--) {
        const char *res = do_match(ms, s + i, ep + 1);
        if (res) return res;
    }
    return NULL;
}

static const char *expand_min(Match *ms, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *res = do_match(ms, s, ep + 1);
        if (res) return res;
        if (!single_matches(ms, s, p, ep)) return NULL;
        s++;
    }
}

/* %bxy at p (pointing at x). */
static const char *balance(Match *ms, const char *s, const char *p) {
    if (p >= ms->p_end - 1) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p) return NULL;
    char open = *p, close = *(p + 1);
    const char *start = s;
    int depth = 1;
    while (++s < ms->src_end) {
        if (*s == close) {
            if (--depth == 0) {
                spend(ms, (size_t)(s - start));
                return s + 1;
            }
        } else if (*s == open) {
            depth++;
        }
    }
    spend(ms, (size_t)(s - start));
    return NULL;
}

static const char *open_capture(Match *ms, const char *s, const char *p, ptrdiff_t what) {
    int level = ms->level;
    if (level >= MAX_CAPTURES) luaL_error(ms->L, "too many captures");
    ms->capture[level].init = s;
    ms->capture[level].len = what;
    ms->level = level + 1;
    const char *res = do_match(ms, s, p);
    if (!res) ms->level--;
    return res;
}

static const char *close_capture(Match *ms, const char *s, const char *p) {
    int l = ms->level - 1;
    while (l >= 0 && ms->capture[l].len != CAP_UNFINISHED) l--;
    if (l < 0) luaL_error(ms->L, "invalid pattern capture");
    ms->capture[l].len = s - ms->capture[l].init;
    const char *res = do_match(ms, s, p);
    if (!res) ms->capture[l].len = CAP_UNFINISHED;
    return res;
}

/* %1..%9 in a pattern: the text of an earlier, closed capture. */
static const char *back_reference(Match *ms, const char *s, int digit) {
    int l = digit - '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED) {
        luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    }
    size_t len = (size_t)ms->capture[l].len;  /* a position capture never matches */
    if ((size_t)(ms->src_end - s) < len || memcmp(ms->capture[l].init, s, len) != 0) return NULL;
    spend(ms, len);
    return s + len;
}

/* ---- The matcher: the end of the match of pattern p at s, or NULL ---- */

static const char *do_match(Match *ms, const char *s, const char *p) {
    if (ms->depth-- == 0) luaL_error(ms->L, "pattern too complex");
    spend(ms, 1);
    while (p != ms->p_end) {
        switch (*p) {
        case '(':
            s = *(p + 1) == ')' ? open_capture(ms, s, p + 2, CAP_POSITION) : open_capture(ms, s, p + 1, CAP_UNFINISHED);
            goto done;
        case ')':
            s = close_capture(ms, s, p + 1);
            goto done;
        case '$':
            if (p + 1 != ms->p_end) break;  /* a '$' inside is a plain character */
            if (s != ms->src_end) s = NULL;
            goto done;
        case L_ESC:
            if (*(p + 1) == 'b') {
                s = balance(ms, s, p + 2);
                if (!s) goto done;
                p += 4;
                continue;
            }
            if (*(p + 1) == 'f') {
                p += 2;
                if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                const char *ep = item_end(ms, p);
                int before = s == ms->src_init ? '\0' : (unsigned char)*(s - 1);
                if (set_matches(before, p, ep - 1) || !set_matches((unsigned char)*s, p, ep - 1)) {
                    s = NULL;
                    goto done;
                }
                p = ep;
                continue;
            }
            if (isdigit((unsigned char)*(p + 1))) {
                s = back_reference(ms, s, (unsigned char)*(p + 1));
                if (!s) goto done;
                p += 2;
                continue;
            }
            break;
        default:
            break;
        }
        /* A single item, maybe followed by a quantifier. */
        const char *ep = item_end(ms, p);
        char q = *ep;
        if (!single_matches(ms, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-') {
                p = ep + 1;
                continue;
            }
            s = NULL;
            goto done;
        }
        switch (q) {
        case '?': {
            const char *res = do_match(ms, s + 1, ep + 1);
            if (res) {
                s = res;
                goto done;
            }
            p = ep + 1;
            continue;
        }
        case '+':
            s = expand_max(ms, s + 1, p, ep);
            goto done;
        case '*':
            s = expand_max(ms, s, p, ep);
            goto done;
        case '-':
            s = expand_min(ms, s, p, ep);
            goto done;
        default:
            s++;
            p = ep;
        }
    }
done:
    ms->depth++;
    return s;
}

/* ---- Captures as results ---- */

/* Capture i's text in *cap and its length, or CAP_POSITION with the position pushed. */
static ptrdiff_t capture_of(Match *ms, int i, const char *s, const char *e, const char **cap) {
    if (i >= ms->level) {
        if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        *cap = s;  /* no captures: the whole match */
        return e - s;
    }
    ptrdiff_t len = ms->capture[i].len;
    *cap = ms->capture[i].init;
    if (len == CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
    if (len == CAP_POSITION) lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
    return len;
}

static void push_capture(Match *ms, int i, const char *s, const char *e) {
    const char *cap;
    ptrdiff_t len = capture_of(ms, i, s, e, &cap);
    if (len != CAP_POSITION) lua_pushlstring(ms->L, cap, (size_t)len);
}

static int push_captures(Match *ms, const char *s, const char *e) {
    int n = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++) push_capture(ms, i, s, e);
    return n;
}

/* ---- The library functions ---- */

static void prepare(Match *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
    ms->L = L;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
    ms->work = 0;
}

static void restart(Match *ms) {
    ms->level = 0;
    ms->depth = MAX_DEPTH;
}

/* A 1-based start argument as a 1-based position within 1..len+1 (or past it). */
static size_t start_position(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

static int has_specials(const char *p, size_t l) {
    size_t upto = 0;
    do {  /* strpbrk stops at a zero byte: look past each one */
        if (strpbrk(p + upto, SPECIALS)) return 1;
        upto += strlen(p + upto) + 1;
    } while (upto <= l);
    return 0;
}

static int find_or_match(lua_State *L, int find) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *at = memmem(s + init, ls - init, p, lp);
        if (at) {
            lua_pushinteger(L, (at - s) + 1);
            lua_pushinteger(L, (lua_Integer)((size_t)(at - s) + lp));
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }
    Match ms;
    const char *s1 = s + init;
    int anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    prepare(&ms, L, s, ls, p, lp);
    do {
        restart(&ms);
        const char *e = do_match(&ms, s1, p);
        if (e) {
            if (!find) return push_captures(&ms, s1, e);
            lua_pushinteger(L, (s1 - s) + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&ms, NULL, NULL) + 2;
        }
    } while (s1++ < ms.src_end && !anchor);
    luaL_pushfail(L);
    return 1;
}

static int guarded_find(lua_State *L) { return find_or_match(L, 1); }
static int guarded_match(lua_State *L) { return find_or_match(L, 0); }

typedef struct GMatch {
    const char *src;
    const char *p;
    const char *lastmatch;  /* an empty match right after a match is skipped */
    Match ms;
} GMatch;

/* Upvalues: the subject, the pattern (keeping them alive) and the GMatch. */
static int gmatch_next(lua_State *L) {
    GMatch *gm = lua_touserdata(L, lua_upvalueindex(3));
    gm->ms.L = L;
    for (const char *src = gm->src; src <= gm->ms.src_end; src++) {
        restart(&gm->ms);
        const char *e = do_match(&gm->ms, src, gm->p);
        if (e && e != gm->lastmatch) {
            gm->src = gm->lastmatch = e;
            return push_captures(&gm->ms, src, e);
        }
    }
    return 0;
}

static int guarded_gmatch(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_position(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) init = ls + 1;  /* nothing left to match */
    lua_settop(L, 2);
    GMatch *gm = lua_newuserdatauv(L, sizeof(GMatch), 0);
    prepare(&gm->ms, L, s, ls, p, lp);
    gm->src = s + init;
    gm->p = p;
    gm->lastmatch = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* A replacement string with %0-%9 and %%. */
static void add_template(Match *ms, luaL_Buffer *b, const char *s, const char *e) {
    lua_State *L = ms->L;
    size_t l;
    const char *text = lua_tolstring(L, 3, &l);
    const char *p;
    while ((p = memchr(text, L_ESC, l)) != NULL) {
        luaL_addlstring(b, text, (size_t)(p - text));
        p++;
        if (*p == L_ESC) {
            luaL_addchar(b, *p);
        } else if (*p == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit((unsigned char)*p)) {
            const char *cap;
            ptrdiff_t len = capture_of(ms, *p - '1', s, e, &cap);
            if (len == CAP_POSITION) {
                luaL_addvalue(b);
            } else {
                luaL_addlstring(b, cap, (size_t)len);
            }
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", L_ESC);
        }
        l -= (size_t)(p + 1 - text);
        text = p + 1;
    }
    luaL_addlstring(b, text, l);
}

/* Adds the replacement of the match s..e; 0 when it kept the original text. */
static int add_replacement(Match *ms, luaL_Buffer *b, const char *s, const char *e, int kind) {
    lua_State *L = ms->L;
    if (kind == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
    } else if (kind == LUA_TTABLE) {
        push_capture(ms, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_template(ms, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1)) return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int guarded_gsub(lua_State *L) {
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    int kind = lua_type(L, 3);
    lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    luaL_argexpected(L, kind == LUA_TNUMBER || kind == LUA_TSTRING || kind == LUA_TFUNCTION || kind == LUA_TTABLE, 3,
                     "string/function/table");
    int anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    const char *lastmatch = NULL;
    lua_Integer n = 0;
    int changed = 0;
    Match ms;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    prepare(&ms, L, src, srcl, p, lp);
    while (n < max) {
        restart(&ms);
        const char *e = do_match(&ms, src, p);
        if (e && e != lastmatch) {
            n++;
            changed = add_replacement(&ms, &b, src, e, kind) | changed;
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void meshd_guard_open_patterns(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"find", guarded_find}, {"match", guarded_match}, {"gmatch", guarded_gmatch}, {"gsub", guarded_gsub}, {NULL, NULL},
    };
    lua_getglobal(L, "string");
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);
}
