/* AWS credentials and region from the shared files, as the AWS CLI and SDKs read them:
 * the credentials file ($AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials, sections
 * `[NAME]`) and the config file ($AWS_CONFIG_FILE, else ~/.aws/config, sections `[default]` and
 * `[profile NAME]`), for the profile $AWS_PROFILE (else "default").
 *
 * Keys: aws_access_key_id, aws_secret_access_key, aws_session_token (the credentials file first,
 * then the profile's section of the config file) and region (the config file). Key names are
 * compared without regard to case, as the AWS CLI's parser lowers them; blanks around names and
 * values are dropped; lines starting with '#' or ';' are comments; a value runs to the end of its
 * line (no comments after it, as in the AWS CLI); indented lines under a key without a value
 * (nested settings such as `s3 =`) are skipped. A section named twice: its keys merge, the later
 * value of a key wins.
 */
#ifndef CBX_EXECUTORS_AWS_PROFILE_H
#define CBX_EXECUTORS_AWS_PROFILE_H

#include <stddef.h>

typedef struct cbx__aws_profile {
    char access_key_id[128];
    char secret_access_key[256];
    char session_token[4096];
    char region[64];
    /* Empty, or a one-line reason the files cannot serve (naming the file and line or the
     * profile): a file that exists but cannot be read, a line that is neither a section, a
     * comment nor `key = value`, a profile named by AWS_PROFILE in neither file, a profile with
     * one of the two keys only. */
    char error[600];
} cbx__aws_profile;

/* Read the profile named profile from the credentials file cred_path and the config file
 * config_path into *out (zeroed first). A path may be NULL or name a file that does not exist:
 * nothing comes from it. explicit_profile: the profile was asked for (AWS_PROFILE), so that its
 * absence from both files is an error; "default" missing is not one. 0, or -1 with out->error
 * set. Reads the files each time (see cbx__aws_profile_cached). */
int cbx__aws_profile_load(const char *cred_path, const char *config_path, const char *profile,
                          int explicit_profile, cbx__aws_profile *out);

/* The process's profile, read on first call from the files and profile the environment names
 * (AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, AWS_PROFILE, HOME) and kept for the process's
 * life: later changes to the files or the environment are not seen. Thread-safe; never NULL. */
const cbx__aws_profile *cbx__aws_profile_cached(void);

#endif
