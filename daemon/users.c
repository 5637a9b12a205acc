/*
 * users.c - who may act on what on a shared daemon, and users' names.
 *
 * Jobs belong to the uid that submitted them (jobs.owner; -1 for jobs from
 * before owners were kept, which belong to the daemon's own user). Anyone
 * admitted to the socket may read every job, as squeue shows everyone's;
 * only the owner, root and the daemon's own uid may cancel, evaluate,
 * export or draw a job.
 *
 * Names come from the system's user database (getpwuid_r) through a small
 * cache: a list of a thousand jobs asks NSS once per distinct owner, not
 * once per job (NSS may be a network directory).
 */
#include "advd.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

unsigned advd_owner_uid(int64_t owner)
{
    return owner < 0 ? (unsigned)getuid() : (unsigned)owner;
}

int advd_privileged(unsigned uid)
{
    return uid == 0 || uid == (unsigned)getuid();
}

int advd_may_act(unsigned uid, int64_t owner)
{
    return advd_privileged(uid) || uid == advd_owner_uid(owner);
}

static void lookup(unsigned uid, char *out, size_t len)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r((uid_t)uid, &pw, buf, sizeof buf, &res) == 0 && res)
        snprintf(out, len, "%s", pw.pw_name);
    else
        snprintf(out, len, "%u", uid);
}

const char *advd_user_name(advd *d, int64_t owner)
{
    unsigned uid = advd_owner_uid(owner);
    advd_user_cache *c = &d->users;
    for (int i = 0; i < c->n; i++)
        if (c->uid[i] == uid)
            return c->name[i];
    /* Replace round robin once full: a daemon sees few distinct users. */
    int slot = c->n < ADVD_USER_CACHE ? c->n++ : (c->next++ % ADVD_USER_CACHE);
    c->uid[slot] = uid;
    lookup(uid, c->name[slot], sizeof c->name[slot]);
    return c->name[slot];
}
