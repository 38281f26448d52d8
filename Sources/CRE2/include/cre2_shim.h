#ifndef CRE2_SHIM_H
#define CRE2_SHIM_H

// A plain C view of RE2 (which is C++), for Swift. Every text argument is a pointer plus a
// length, so patterns and subjects may contain NUL bytes; a NULL pointer is allowed when the
// length is 0. No function throws or aborts: failures are return values.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A compiled pattern (an RE2 object). Immutable once compiled; RE2 allows concurrent
/// matching on one object from any number of threads.
typedef struct cre2_regex cre2_regex;

typedef struct cre2_options {
    /// Non-zero: match case-sensitively (RE2's default).
    int case_sensitive;
    /// Memory budget for the compiled program and its DFA caches, in bytes; 0 keeps RE2's default.
    int64_t max_mem;
} cre2_options;

/// RE2's defaults: UTF-8, case-sensitive, leftmost-first, 8 MiB.
cre2_options cre2_default_options(void);

/// Compiles `pattern`. Returns NULL only when memory ran out; otherwise an object to free
/// with cre2_free, whose cre2_ok tells whether the pattern compiled.
cre2_regex *cre2_compile(const char *pattern, size_t length, const cre2_options *options);
void cre2_free(cre2_regex *re);

/// 1 when the pattern compiled, else 0 (then cre2_error says why).
int cre2_ok(const cre2_regex *re);
/// RE2's error text ("missing ]: [0-9"), "" when compiled. Valid while `re` lives.
const char *cre2_error(const cre2_regex *re);
/// RE2's ErrorCode (0 = no error, 2 = bad escape, 12 = bad perl operator, ...).
int cre2_error_code(const cre2_regex *re);
/// 1 when the pattern failed because its program outgrew max_mem (RE2::ErrorPatternTooLarge).
int cre2_error_is_too_large(const cre2_regex *re);
/// The part of the pattern the error is about ("(?=", "\\1"), "" when compiled.
const char *cre2_error_arg(const cre2_regex *re);
/// RE2's program size: a rough cost of the compiled pattern; -1 when it did not compile.
int cre2_program_size(const cre2_regex *re);
/// Number of capturing groups; -1 when it did not compile.
int cre2_capture_groups(const cre2_regex *re);

/// 1 when the whole text matches (RE2::FullMatch), else 0.
int cre2_full_match(const cre2_regex *re, const char *text, size_t length);
/// 1 when some part of the text matches (RE2::PartialMatch), else 0.
int cre2_partial_match(const cre2_regex *re, const char *text, size_t length);

/// Checks a rewrite string (\0-\9 name groups, \\ is a backslash) against the pattern's groups.
/// Returns NULL when it is usable, else an error text to release with cre2_free_string.
char *cre2_check_rewrite(const cre2_regex *re, const char *rewrite, size_t length);

/// Replaces every non-overlapping match in `text` (RE2::GlobalReplace). Returns a new buffer
/// (release with cre2_free_string) holding the result, its length in *out_length and the
/// number of replacements in *replacements (0: the text came back unchanged; also when the
/// rewrite string is invalid). Returns NULL only when memory ran out.
char *cre2_global_replace(const cre2_regex *re, const char *text, size_t length,
                          const char *rewrite, size_t rewrite_length,
                          size_t *out_length, int *replacements);

void cre2_free_string(char *s);

#ifdef __cplusplus
}
#endif

#endif
