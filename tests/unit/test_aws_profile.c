/* The AWS shared credentials and config files: sections, comments, blanks, profiles, and the
 * one-line errors (src/executors/aws_profile.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "executors/aws_profile.h"

static char dir[] = "/tmp/cbx-aws-profile-XXXXXX";
static char cred[256], conf[256];

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cred, sizeof cred, "%s/credentials", dir);
    snprintf(conf, sizeof conf, "%s/config", dir);
}

static void teardown(void)
{
    unlink(cred);
    unlink(conf);
    rmdir(dir);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

TestSuite(aws_profile, .init = setup, .fini = teardown);

Test(aws_profile, default_profile_with_comments_and_blanks)
{
    put(cred, "# a comment\n"
              "; another\n"
              "\n"
              "[other]\n"
              "aws_access_key_id = OTHER\n"
              "aws_secret_access_key = othersecret\n"
              "  [ default ]  \r\n"
              "  AWS_Access_Key_ID=AKIDDEFAULT   \r\n"
              "aws_secret_access_key   =   s3cr3t/with+chars=  \n"
              "aws_session_token = tok#not-a-comment\n");
    put(conf, "[default]\nregion = eu-west-3\n[profile other]\nregion = us-west-2\n");
    cbx__aws_profile p;
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "default", 0, &p), 0, "%s", p.error);
    cr_assert_str_eq(p.access_key_id, "AKIDDEFAULT");
    cr_assert_str_eq(p.secret_access_key, "s3cr3t/with+chars=");
    cr_assert_str_eq(p.session_token, "tok#not-a-comment");
    cr_assert_str_eq(p.region, "eu-west-3");
    cr_assert_str_eq(p.error, "");
}

Test(aws_profile, named_profile_region_from_profile_section)
{
    put(cred, "[default]\naws_access_key_id=A\naws_secret_access_key=B\n"
              "[work]\naws_access_key_id : WORKID\naws_secret_access_key : WORKSECRET\n");
    put(conf, "[default]\nregion=eu-west-1\n"
              "[work]\nregion=should-not-count\n" /* not a profile section in config */
              "[profile   work]\nregion = ap-south-1\n"
              "s3 =\n  max_concurrent_requests = 20\n  bad line without equals\n"
              "output = json\n"
              "[sso-session x]\nsso_region = us-east-1\n");
    cbx__aws_profile p;
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "work", 1, &p), 0, "%s", p.error);
    cr_assert_str_eq(p.access_key_id, "WORKID");
    cr_assert_str_eq(p.secret_access_key, "WORKSECRET");
    cr_assert_str_eq(p.session_token, "");
    cr_assert_str_eq(p.region, "ap-south-1");
}

Test(aws_profile, keys_from_the_config_file_when_the_credentials_file_has_none)
{
    put(conf, "[profile dev]\naws_access_key_id=CFGID\naws_secret_access_key=CFGSECRET\n"
              "aws_session_token=CFGTOKEN\nregion=us-east-2\n");
    cbx__aws_profile p;
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "dev", 1, &p), 0, "%s", p.error);
    cr_assert_str_eq(p.access_key_id, "CFGID");
    cr_assert_str_eq(p.session_token, "CFGTOKEN");
    cr_assert_str_eq(p.region, "us-east-2");
}

Test(aws_profile, missing_files_give_nothing)
{
    cbx__aws_profile p;
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "default", 0, &p), 0);
    cr_assert_str_eq(p.access_key_id, "");
    cr_assert_str_eq(p.region, "");
    cr_assert_eq(cbx__aws_profile_load(NULL, NULL, NULL, 0, &p), 0);
}

Test(aws_profile, missing_named_profile_is_one_line_naming_files_and_profile)
{
    put(cred, "[default]\naws_access_key_id=A\naws_secret_access_key=B\n");
    cbx__aws_profile p;
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "nosuch", 1, &p), -1);
    cr_assert_null(strchr(p.error, '\n'), "%s", p.error);
    cr_assert(strstr(p.error, "AWS_PROFILE 'nosuch'"), "%s", p.error);
    cr_assert(strstr(p.error, cred), "%s", p.error);
    cr_assert(strstr(p.error, conf), "%s", p.error);
    cr_assert(strstr(p.error, "[profile nosuch]"), "%s", p.error);
    cr_assert_str_eq(p.access_key_id, "");
    /* "default" missing is not an error: there are just no keys */
    put(cred, "[x]\naws_access_key_id=A\naws_secret_access_key=B\n");
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "default", 0, &p), 0);
    cr_assert_str_eq(p.access_key_id, "");
}

Test(aws_profile, malformed_lines_name_file_and_line)
{
    put(cred, "[default]\naws_access_key_id=A\nthis is not a key\n");
    cbx__aws_profile p;
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "default", 0, &p), -1);
    char want[600];
    snprintf(want, sizeof want, "%s:3: expected 'key = value', a [section] or a comment", cred);
    cr_assert_str_eq(p.error, want);

    put(cred, "[default\naws_access_key_id=A\n");
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "default", 0, &p), -1);
    snprintf(want, sizeof want, "%s:1: a section header without its closing ']'", cred);
    cr_assert_str_eq(p.error, want);

    put(cred, "aws_access_key_id=A\n[default]\n");
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "default", 0, &p), -1);
    snprintf(want, sizeof want, "%s:1: a key before any [section]", cred);
    cr_assert_str_eq(p.error, want);
}

Test(aws_profile, half_a_key_pair_is_an_error)
{
    put(cred, "[default]\naws_access_key_id = ONLYID\n");
    cbx__aws_profile p;
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "default", 0, &p), -1);
    char want[600];
    snprintf(want, sizeof want,
             "%s: profile 'default' has aws_access_key_id but no aws_secret_access_key", cred);
    cr_assert_str_eq(p.error, want);
}

Test(aws_profile, duplicate_sections_merge_later_wins)
{
    put(cred, "[default]\naws_access_key_id=FIRST\n[other]\nx=1\n"
              "[default]\naws_access_key_id=SECOND\naws_secret_access_key=S\n");
    cbx__aws_profile p;
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "default", 0, &p), 0, "%s", p.error);
    cr_assert_str_eq(p.access_key_id, "SECOND");
    cr_assert_str_eq(p.secret_access_key, "S");
}

Test(aws_profile, unreadable_file_is_an_error)
{
    if (geteuid() == 0)
        cr_skip_test("root reads any file");
    put(cred, "[default]\n");
    chmod(cred, 0);
    cbx__aws_profile p;
    cr_assert_eq(cbx__aws_profile_load(cred, conf, "default", 0, &p), -1);
    cr_assert(strstr(p.error, "cannot read the AWS credentials file"), "%s", p.error);
}
