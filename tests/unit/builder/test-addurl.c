/* ADD <url>: which sources are git repositories or plain URLs (BuildKit's rules), the file
 * name a URL gives (the decoded last path component, "__unnamed__" when there is none), and
 * builder_path_clean, which the mount sources use. */
#include "builder/internal.h"
#include "tap.h"

static void name_case(const char *url, const char *want)
{
    char *got = builder_url_filename(url);
    tap_ok(strcmp(got, want) == 0, "%s names \"%s\" (got \"%s\")", url, want, got);
    free(got);
}

static void clean_case(const char *p, bool dotdot, const char *want)
{
    char *got = builder_path_clean(p, dotdot);
    tap_ok(strcmp(got, want) == 0, "clean(\"%s\", %d) is \"%s\" (got \"%s\")", p, dotdot, want,
           got);
    free(got);
}

int main(void)
{
    name_case("http://h/a.txt", "a.txt");
    name_case("https://h:8080/dir/file.tar.gz?x=1#frag", "file.tar.gz");
    name_case("http://h/dir/", "dir");
    name_case("http://h/a%20b.txt", "a b.txt");
    name_case("http://h/a%2Fb", "b");
    name_case("http://h/", "__unnamed__");
    name_case("http://h", "__unnamed__");
    name_case("http://h?q=/x", "__unnamed__");
    name_case("http://h/..", "__unnamed__");
    name_case("http://h/x%00y", "__unnamed__");
    name_case("http://h/bad%zz", "bad%zz");

    tap_ok(builder_is_http_url("http://h/a"), "http URL");
    tap_ok(builder_is_http_url("https://h/a.gitx"), "https URL not ending in .git");
    tap_ok(!builder_is_http_url("https://h/r.git"), "https URL ending in .git is a repository");
    tap_ok(builder_is_git_url("https://h/r.git#main:docs"), ".git before a fragment");
    tap_ok(builder_is_git_url("git@github.com:o/r.git"), "git@");
    tap_ok(builder_is_git_url("git://h/r"), "git://");
    tap_ok(!builder_is_git_url("file.git"), "a local name is not a URL");
    tap_ok(!builder_is_http_url("httpfile"), "a local name is not a URL either");

    clean_case("/a/./b/", false, "a/b");
    clean_case("", false, ".");
    clean_case("a/../b", false, "a/../b");
    clean_case("a/../b", true, "b");
    clean_case("../../x", true, "x");
    clean_case("/", true, ".");
    return tap_done();
}
