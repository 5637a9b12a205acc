/*
 * test_launch.c - the worker's command line for each launcher
 * (daemon/launch.h): what the daemon runs for local, mpirun and slurm
 * jobs, the settings' words in place, and the refusals.
 */
#include "testutil.h"

#include "core/common.h"
#include "daemon/launch.h"

static char buf[8192], *argv_[ADVD_LAUNCH_ARGV_MAX + 1], err[CORE_ERRLEN], line[4096];

static const char *launch(const advd_launch_cfg *c, long long job, int procs)
{
    int n = advd_launch_argv(c, job, procs, buf, sizeof buf, argv_, err);
    ck_assert_msg(n > 0, "%s", err);
    ck_assert_ptr_null(argv_[n]);
    advd_launch_line(argv_, line, sizeof line);
    return line;
}

START_TEST(local_is_the_daemon_itself)
{
    advd_launch_cfg c = {.launcher = ADVD_LAUNCH_LOCAL, .exe = "/usr/sbin/advd"};
    ck_assert_str_eq(launch(&c, 7, 1), "/usr/sbin/advd --worker");
    ck_assert_int_eq(advd_launch_argv(&c, 7, 2, buf, sizeof buf, argv_, err), -1);
    ck_assert_str_eq(err, "invalid 'procs': 2 processes need the daemon's launcher to be "
                          "mpirun or slurm (it is 'local')");
}
END_TEST

START_TEST(mpirun_runs_the_mpi_worker_beside_advd)
{
    advd_launch_cfg c = {.launcher = ADVD_LAUNCH_MPIRUN, .exe = "/opt/advd/bin/advd",
                         .mpirun_args = "  --hostfile /etc/hosts.mpi\t--bind-to none "};
    ck_assert_str_eq(launch(&c, 3, 4), "mpirun -np 4 --hostfile /etc/hosts.mpi --bind-to none "
                                      "/opt/advd/bin/advd-worker-mpi --worker");
    ck_assert_str_eq(argv_[4], "/etc/hosts.mpi");
    c.worker_mpi = "/usr/lib/advd/advd-worker-mpi";
    c.mpirun_args = "";
    ck_assert_str_eq(launch(&c, 3, 1), "mpirun -np 1 /usr/lib/advd/advd-worker-mpi --worker");
}
END_TEST

START_TEST(slurm_allocates_then_sruns_with_stdin_to_rank_0)
{
    advd_launch_cfg c = {.launcher = ADVD_LAUNCH_SLURM, .exe = "advd",
                         .salloc_args = "--partition gpu --time 60", .srun_args = "--mpi=pmix"};
    ck_assert_str_eq(launch(&c, 42, 2),
                     "salloc -n 2 -J advd-42 --partition gpu --time 60 srun -n 2 --input=0 "
                     "--mpi=pmix advd-worker-mpi --worker");
}
END_TEST

START_TEST(too_long_a_command_line_is_refused)
{
    char many[1024] = "";
    for (int i = 0; i < ADVD_LAUNCH_ARGV_MAX; i++)
        strcat(many, "-v ");
    advd_launch_cfg c = {.launcher = ADVD_LAUNCH_MPIRUN, .exe = "advd", .mpirun_args = many};
    ck_assert_int_eq(advd_launch_argv(&c, 1, 2, buf, sizeof buf, argv_, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "command line is too long"));
    c.mpirun_args = "";
    ck_assert_int_eq(advd_launch_argv(&c, 1, 2, buf, 20, argv_, err), -1);
}
END_TEST

START_TEST(a_missing_mpi_worker_is_named_at_start)
{
    advd_launch_cfg c = {.launcher = ADVD_LAUNCH_LOCAL, .exe = "/nowhere/advd"};
    ck_assert_int_eq(advd_launch_check(&c, err), 0);
    c.launcher = ADVD_LAUNCH_SLURM;
    ck_assert_int_eq(advd_launch_check(&c, err), -1);
    ck_assert_str_eq(err, "launcher 'slurm' needs the MPI worker '/nowhere/advd-worker-mpi': No "
                          "such file or directory (make builds it where Open MPI is installed; "
                          "'worker_mpi' names another path)");
    c.worker_mpi = "/bin/sh";
    ck_assert_int_eq(advd_launch_check(&c, err), 0);
}
END_TEST

START_TEST(launcher_names)
{
    int l = -1;
    ck_assert_int_eq(advd_launcher_parse("slurm", &l), 0);
    ck_assert_int_eq(l, ADVD_LAUNCH_SLURM);
    ck_assert_int_eq(advd_launcher_parse("srun", &l), -1);
    ck_assert_str_eq(advd_launcher_name(ADVD_LAUNCH_MPIRUN), "mpirun");
}
END_TEST

static Suite *launch_suite(void)
{
    Suite *s = suite_create("launch");
    TCase *tc = tcase_create("launch");
    tcase_add_test(tc, local_is_the_daemon_itself);
    tcase_add_test(tc, mpirun_runs_the_mpi_worker_beside_advd);
    tcase_add_test(tc, slurm_allocates_then_sruns_with_stdin_to_rank_0);
    tcase_add_test(tc, too_long_a_command_line_is_refused);
    tcase_add_test(tc, a_missing_mpi_worker_is_named_at_start);
    tcase_add_test(tc, launcher_names);
    suite_add_tcase(s, tc);
    return s;
}

ADV_TEST_MAIN(launch_suite)
