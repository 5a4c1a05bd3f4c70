/* AWS credentials and region from the shared credentials and config files (see aws_profile.h). */
#include "executors/aws_profile.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

/* What one file's section for the profile holds. */
typedef struct found {
    int section; /* the profile's section is in the file */
    char id[128], secret[256], token[4096], region[64];
} found;

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The profile a section header names (in place), or NULL when it names none: in the config file
 * `default` and `profile NAME`, in the credentials file any name. */
static const char *section_profile(char *name, int config)
{
    if (!config || strcmp(name, "default") == 0)
        return name;
    if (strncmp(name, "profile", 7) == 0 && (name[7] == ' ' || name[7] == '\t'))
        return trim(name + 8);
    return NULL; /* sso-session, services, ...: not a profile */
}

static void keep(char *dst, size_t len, const char *v)
{
    snprintf(dst, len, "%s", v);
}

/* Read path's section for profile into *f. 0 (a file that does not exist gives nothing), or -1
 * with the reason in err. */
static int scan(const char *path, int config, const char *profile, found *f, char *err,
                size_t errlen)
{
    memset(f, 0, sizeof *f);
    if (!path || !path[0])
        return 0;
    FILE *fp = fopen(path, "r");
    if (!fp) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        snprintf(err, errlen, "%s: cannot read the AWS %s file: %s", path,
                 config ? "config" : "credentials", strerror(errno));
        return -1;
    }
    char buf[8192];
    int lineno = 0, in_section = 0, any_section = 0, nested = 0, rc = 0;
    while (fgets(buf, sizeof buf, fp)) {
        lineno++;
        size_t n = strlen(buf);
        if (n == sizeof buf - 1 && buf[n - 1] != '\n') {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        int indented = buf[0] == ' ' || buf[0] == '\t';
        char *s = trim(buf);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (indented && nested)
            continue; /* a nested setting under `key =` */
        nested = 0;
        if (*s == '[') {
            size_t len = strlen(s);
            if (s[len - 1] != ']') {
                snprintf(err, errlen, "%s:%d: a section header without its closing ']'", path,
                         lineno);
                rc = -1;
                break;
            }
            s[len - 1] = '\0';
            const char *name = section_profile(trim(s + 1), config);
            in_section = name && strcmp(name, profile) == 0;
            any_section = 1;
            if (in_section)
                f->section = 1;
            continue;
        }
        char *eq = strpbrk(s, "=:");
        if (!eq || eq == s) {
            snprintf(err, errlen, "%s:%d: expected 'key = value', a [section] or a comment", path,
                     lineno);
            rc = -1;
            break;
        }
        if (!any_section) {
            snprintf(err, errlen, "%s:%d: a key before any [section]", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        const char *key = trim(s), *value = trim(eq + 1);
        nested = !*value;
        if (!in_section)
            continue;
        if (strcasecmp(key, "aws_access_key_id") == 0)
            keep(f->id, sizeof f->id, value);
        else if (strcasecmp(key, "aws_secret_access_key") == 0)
            keep(f->secret, sizeof f->secret, value);
        else if (strcasecmp(key, "aws_session_token") == 0)
            keep(f->token, sizeof f->token, value);
        else if (strcasecmp(key, "region") == 0)
            keep(f->region, sizeof f->region, value);
    }
    if (rc == 0 && ferror(fp)) {
        snprintf(err, errlen, "%s: cannot read the AWS %s file: %s", path,
                 config ? "config" : "credentials", strerror(errno));
        rc = -1;
    }
    fclose(fp);
    return rc;
}

/* One of the two keys without the other: the reason, else 0. */
static int half_keys(const found *f, const char *path, const char *profile, char *err,
                     size_t errlen)
{
    if (!f->id[0] == !f->secret[0])
        return 0;
    snprintf(err, errlen, "%s: profile '%s' has %s but no %s", path, profile,
             f->id[0] ? "aws_access_key_id" : "aws_secret_access_key",
             f->id[0] ? "aws_secret_access_key" : "aws_access_key_id");
    return -1;
}

static int load(const char *cred_path, const char *config_path, const char *profile,
                int explicit_profile, found *cred, found *conf, cbx__aws_profile *out)
{
    if (scan(cred_path, 0, profile, cred, out->error, sizeof out->error) < 0 ||
        scan(config_path, 1, profile, conf, out->error, sizeof out->error) < 0)
        return -1;
    if (explicit_profile && !cred->section && !conf->section) {
        snprintf(out->error, sizeof out->error,
                 "AWS_PROFILE '%s': no [%s] in %s and no [profile %s] in %s", profile, profile,
                 cred_path ? cred_path : "(no credentials file)", profile,
                 config_path ? config_path : "(no config file)");
        return -1;
    }
    if (half_keys(cred, cred_path, profile, out->error, sizeof out->error) < 0)
        return -1;
    const found *keys = cred->id[0] ? cred : NULL;
    if (!keys) {
        if (half_keys(conf, config_path, profile, out->error, sizeof out->error) < 0)
            return -1;
        keys = conf->id[0] ? conf : NULL;
    }
    if (keys) {
        keep(out->access_key_id, sizeof out->access_key_id, keys->id);
        keep(out->secret_access_key, sizeof out->secret_access_key, keys->secret);
        keep(out->session_token, sizeof out->session_token, keys->token);
    }
    keep(out->region, sizeof out->region, conf->region);
    return 0;
}

int cbx__aws_profile_load(const char *cred_path, const char *config_path, const char *profile,
                          int explicit_profile, cbx__aws_profile *out)
{
    memset(out, 0, sizeof *out);
    if (!profile || !profile[0])
        profile = "default";
    /* 9 KB: off the stack, and not thread-local either (static TLS is zeroed in every thread the
     * process starts) */
    found *both = malloc(2 * sizeof *both);
    if (!both) {
        snprintf(out->error, sizeof out->error, "out of memory");
        return -1;
    }
    int rc = load(cred_path, config_path, profile, explicit_profile, &both[0], &both[1], out);
    explicit_bzero(both, 2 * sizeof *both); /* the keys read */
    free(both);
    return rc;
}

/* path, or a file under the home directory; ~/ at its start is the home directory. */
static void file_path(const char *env, const char *dflt, char *buf, size_t len)
{
    const char *v = getenv(env);
    const char *home = getenv("HOME");
    if (!home || !home[0]) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir ? pw->pw_dir : "";
    }
    if (v && v[0]) {
        if (v[0] == '~' && v[1] == '/')
            snprintf(buf, len, "%s/%s", home, v + 2);
        else
            snprintf(buf, len, "%s", v);
        return;
    }
    snprintf(buf, len, "%s/%s", home, dflt);
}

static cbx__aws_profile cached;
static uv_once_t cached_once = UV_ONCE_INIT;

static void load_cached(void)
{
    char cred[1024], conf[1024];
    file_path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", cred, sizeof cred);
    file_path("AWS_CONFIG_FILE", ".aws/config", conf, sizeof conf);
    const char *profile = getenv("AWS_PROFILE");
    int explicit_profile = profile && profile[0];
    cbx__aws_profile_load(cred, conf, explicit_profile ? profile : "default", explicit_profile,
                          &cached);
}

const cbx__aws_profile *cbx__aws_profile_cached(void)
{
    uv_once(&cached_once, load_cached);
    return &cached;
}
