#include "cre2_shim.h"

#include <re2/re2.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

// The opaque handle is the RE2 object itself.
struct cre2_regex {
    re2::RE2 re;
    cre2_regex(const re2::StringPiece &pattern, const re2::RE2::Options &options) : re(pattern, options) {}
};

namespace {

re2::StringPiece piece(const char *p, size_t n) {
    return n == 0 ? re2::StringPiece() : re2::StringPiece(p, n);
}

// A malloc'd copy (NUL-terminated, so text without NULs reads as a C string), or NULL.
char *copy_out(const std::string &s) {
    char *out = static_cast<char *>(std::malloc(s.size() + 1));
    if (out == nullptr) return nullptr;
    std::memcpy(out, s.data(), s.size());
    out[s.size()] = '\0';
    return out;
}

}  // namespace

extern "C" {

cre2_options cre2_default_options(void) {
    cre2_options o;
    o.case_sensitive = 1;
    o.max_mem = 0;
    return o;
}

cre2_regex *cre2_compile(const char *pattern, size_t length, const cre2_options *options) {
    re2::RE2::Options o;
    o.set_log_errors(false);  // errors are returned, never printed to stderr
    if (options != nullptr) {
        o.set_case_sensitive(options->case_sensitive != 0);
        if (options->max_mem > 0) o.set_max_mem(options->max_mem);
    }
    try {
        return new cre2_regex(piece(pattern, length), o);
    } catch (...) {  // std::bad_alloc: nothing may unwind into Swift
        return nullptr;
    }
}

void cre2_free(cre2_regex *re) { delete re; }

int cre2_ok(const cre2_regex *re) { return re->re.ok() ? 1 : 0; }

const char *cre2_error(const cre2_regex *re) { return re->re.error().c_str(); }

int cre2_error_code(const cre2_regex *re) { return static_cast<int>(re->re.error_code()); }

int cre2_error_is_too_large(const cre2_regex *re) {
    return re->re.error_code() == re2::RE2::ErrorPatternTooLarge ? 1 : 0;
}

const char *cre2_error_arg(const cre2_regex *re) { return re->re.error_arg().c_str(); }

int cre2_program_size(const cre2_regex *re) { return re->re.ok() ? re->re.ProgramSize() : -1; }

int cre2_capture_groups(const cre2_regex *re) { return re->re.NumberOfCapturingGroups(); }

int cre2_full_match(const cre2_regex *re, const char *text, size_t length) {
    return re2::RE2::FullMatch(piece(text, length), re->re) ? 1 : 0;
}

int cre2_partial_match(const cre2_regex *re, const char *text, size_t length) {
    return re2::RE2::PartialMatch(piece(text, length), re->re) ? 1 : 0;
}

char *cre2_check_rewrite(const cre2_regex *re, const char *rewrite, size_t length) {
    try {
        std::string error;
        if (!re->re.ok()) return copy_out(re->re.error());
        if (re->re.CheckRewriteString(piece(rewrite, length), &error)) return nullptr;
        return copy_out(error);
    } catch (...) {
        return copy_out("out of memory");
    }
}

char *cre2_global_replace(const cre2_regex *re, const char *text, size_t length,
                          const char *rewrite, size_t rewrite_length,
                          size_t *out_length, int *replacements) {
    try {
        std::string s = length == 0 ? std::string() : std::string(text, length);
        std::string error;
        re2::StringPiece r = piece(rewrite, rewrite_length);
        // GlobalReplace would splice a half-applied rewrite into the text for an invalid one.
        int n = re->re.ok() && re->re.CheckRewriteString(r, &error) ? re2::RE2::GlobalReplace(&s, re->re, r) : 0;
        if (replacements != nullptr) *replacements = n;
        if (out_length != nullptr) *out_length = s.size();
        return copy_out(s);
    } catch (...) {
        return nullptr;
    }
}

void cre2_free_string(char *s) { std::free(s); }

}  // extern "C"
