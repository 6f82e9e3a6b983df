//! The learner's environment, part 1: `scripts/doctor`, and that the
//! scripts are executable.
//!
//! Each doctor check is shown failing, on a missing or broken rootfs, a fake
//! cgroup tree, a fake sysctl tree, an overlay as the state directory, a
//! process without capabilities, a normal user, a PATH without `ip`; and
//! passing on this machine (and, through scripts/vm-test, on a cgroup-v2 VM).
//! Part 2, `scripts/reset`, is tests/reset.rs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use cfs_tests::kernel::{assert_mounts_unchanged, exists, mounts};
use cfs_tests::paths::{rootfs, workspace};
use cfs_tests::run::{as_nobody, output, Output};
use cfs_tests::scripts::{contains, path_str, script, write};
use cfs_tests::{bail, ensure, root, Context, Result};

fn doctor(args: &[&str]) -> Result<Output> {
    let mut cmd = script("doctor");
    cmd.args(args);
    output(cmd)
}

/// The line doctor printed for `check`.
fn find_line<'a>(out: &'a Output, check: &str) -> Result<&'a str> {
    out.stdout
        .lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(check)))
        .with_context(|| format!("no {check} line in\n{}", out.stdout))
}

/// The line doctor printed for `check`, which must have `status`.
fn check_line<'a>(out: &'a Output, status: &str, check: &str) -> Result<&'a str> {
    let line = find_line(out, check)?;
    ensure!(
        line.starts_with(&format!("{status:<4}  ")),
        "wanted {status} for {check}, got:\n{line}\nin\n{}",
        out.stdout
    );
    Ok(line)
}

/// Doctor failed, and its last line names `chapter` as the first one that cannot run.
fn blocks(out: &Output, chapter: &str) -> Result<()> {
    out.expect_code(1)?;
    let last = out.stdout.lines().last().unwrap_or_default();
    ensure!(
        last == format!(
            "doctor: {chapter} and the chapters after it cannot run here: fix the FAIL lines above"
        ),
        "last line: {last:?}"
    );
    Ok(())
}

const CHECKS: [&str; 15] = [
    "root",
    "kernel",
    "uts namespace",
    "pid namespace",
    "mount namespace",
    "ipc namespace",
    "network namespace",
    "cgroup namespace",
    "user namespace",
    "rootfs",
    "cgroups",
    "overlayfs",
    "user namespaces",
    "seccomp",
    "veth",
];

fn doctor_passes_here() -> Result<()> {
    let before = mounts()?;
    let out = doctor(&[])?;
    out.expect_code(0)?;
    for check in CHECKS {
        let line = find_line(&out, check)?;
        ensure!(
            line.starts_with("ok  ") || line.starts_with("warn"),
            "{check}: {line}"
        );
    }
    ensure!(
        out.stdout.lines().last() == Some("doctor: every chapter can run here"),
        "{}",
        out.stdout
    );
    assert_mounts_unchanged(&before)?;
    // The overlay probe's scratch directory is gone.
    let mut dir = PathBuf::from("/var/lib/containers-from-scratch");
    while !dir.is_dir() {
        dir = dir.parent().context("no existing ancestor")?.to_path_buf();
    }
    for entry in fs::read_dir(&dir)? {
        let name = entry?.file_name();
        ensure!(
            !name.to_string_lossy().starts_with(".cfs-doctor-"),
            "doctor left {name:?} in {}",
            dir.display()
        );
    }
    Ok(())
}

fn doctor_as_a_normal_user() -> Result<()> {
    let out = as_nobody(script("doctor"))?;
    check_line(&out, "FAIL", "root")?;
    check_line(&out, "skip", "uts namespace")?;
    blocks(&out, "ch01-uts")
}

fn doctor_without_capabilities() -> Result<()> {
    // uid 0 with every capability dropped: as in a container that is not privileged.
    let mut cmd = Command::new("setpriv");
    cmd.args(["--bounding-set=-all", "--inh-caps=-all"])
        .arg(workspace().join("scripts/doctor"));
    let out = output(cmd)?;
    contains(
        check_line(&out, "FAIL", "root")?,
        &["without CAP_SYS_ADMIN"],
    )?;
    contains(
        check_line(&out, "FAIL", "uts namespace")?,
        &["Operation not permitted", "(needed from ch01-uts)", "fix: "],
    )?;
    for (kind, chapter) in [
        ("pid", "ch02-pid"),
        ("mount", "ch03-mount-chroot"),
        ("ipc", "ch06-full-runtime"),
        ("network", "ch06-full-runtime"),
        ("cgroup", "ch06-full-runtime"),
    ] {
        contains(
            check_line(&out, "FAIL", &format!("{kind} namespace"))?,
            &[
                "Operation not permitted",
                &format!("(needed from {chapter})"),
            ],
        )?;
    }
    // Creating a user namespace needs no capability, unless a sysctl
    // (Debian's, Ubuntu's AppArmor one) keeps it to CAP_SYS_ADMIN.
    let restricted = [
        ("kernel/unprivileged_userns_clone", "0"),
        ("kernel/apparmor_restrict_unprivileged_userns", "1"),
    ]
    .iter()
    .any(|(name, value)| {
        fs::read_to_string(format!("/proc/sys/{name}")).is_ok_and(|v| v.trim() == *value)
    });
    check_line(
        &out,
        if restricted { "FAIL" } else { "ok" },
        "user namespace",
    )?;
    blocks(&out, "ch01-uts")
}

fn doctor_kernel_without_user_namespaces() -> Result<()> {
    // An `unshare` that fails for --user as on a kernel built without
    // CONFIG_USER_NS (EINVAL), and runs the real one otherwise.
    let dir = tempfile::tempdir()?;
    let fake = dir.path().join("unshare");
    write(
        &fake,
        "#!/bin/sh\n\
         case \" $* \" in *' --user '*) echo 'unshare: unshare failed: Invalid argument' >&2; exit 1 ;; esac\n\
         exec /usr/bin/unshare \"$@\"\n",
    )?;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755))?;
    let mut cmd = script("doctor");
    cmd.env(
        "PATH",
        format!("{}:{}", dir.path().display(), std::env::var("PATH")?),
    );
    let out = output(cmd)?;
    contains(
        check_line(&out, "FAIL", "user namespace")?,
        &[
            "unshare --user: unshare: unshare failed: Invalid argument",
            "(needed from ch06-full-runtime)",
            "fix: a kernel with CONFIG_USER_NS=y",
        ],
    )?;
    check_line(&out, "ok", "uts namespace")?;
    blocks(&out, "ch06-full-runtime")
}

fn doctor_missing_rootfs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("rootfs");
    let out = doctor(&["--rootfs", path_str(&missing)?])?;
    contains(
        check_line(&out, "FAIL", "rootfs")?,
        &[
            "no busybox at",
            "fix: build the default rootfs: sudo scripts/mkrootfs",
        ],
    )?;
    blocks(&out, "ch03-mount-chroot")
}

fn doctor_dynamic_busybox() -> Result<()> {
    // A dynamically linked program in place of the static busybox: its loader
    // is not in the rootfs, so exec fails with ENOENT although the file exists.
    let dir = tempfile::tempdir()?;
    let fake = dir.path().join("rootfs");
    fs::create_dir_all(fake.join("bin"))?;
    fs::copy("/usr/bin/true", fake.join("bin/busybox"))?;
    let out = doctor(&["--rootfs", path_str(&fake)?])?;
    contains(
        check_line(&out, "FAIL", "rootfs")?,
        &[
            "No such file or directory",
            "dynamically linked",
            "busybox-static",
        ],
    )?;
    blocks(&out, "ch03-mount-chroot")?;
    // The real one passes.
    let out = doctor(&["--rootfs", path_str(&rootfs()?)?])?;
    check_line(&out, "ok", "rootfs")?;
    Ok(())
}

/// A fake cgroup tree: `files` are (relative path, content).
fn fake_cgroups(files: &[(&str, &str)]) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for (path, text) in files {
        if path.ends_with('/') {
            fs::create_dir_all(dir.path().join(path))?;
        } else {
            write(dir.path().join(path), text)?;
        }
    }
    Ok(dir)
}

fn doctor_with_cgroups(tree: &tempfile::TempDir, self_cgroup: &str) -> Result<Output> {
    let file = tree.path().join("self-cgroup");
    write(&file, self_cgroup)?;
    let root = tree.path().join("root");
    fs::create_dir_all(&root)?;
    doctor(&[
        "--cgroup-root",
        path_str(&root)?,
        "--self-cgroup",
        path_str(&file)?,
    ])
}

fn doctor_cgroup_checks() -> Result<()> {
    // Nothing mounted.
    let tree = fake_cgroups(&[])?;
    let out = doctor_with_cgroups(&tree, "0::/\n")?;
    contains(
        check_line(&out, "FAIL", "cgroups")?,
        &["no cgroup filesystem", "fix: mount one"],
    )?;
    blocks(&out, "ch04-cgroups")?;

    // cgroup v2 without the memory controller (booted with cgroup_disable=memory).
    let tree = fake_cgroups(&[("root/cgroup.controllers", "cpuset cpu io pids\n")])?;
    let out = doctor_with_cgroups(&tree, "0::/\n")?;
    contains(
        check_line(&out, "FAIL", "cgroups")?,
        &["v2", "no memory controller"],
    )?;
    blocks(&out, "ch04-cgroups")?;

    // cgroup v2 as systemd sets it up: the shell in session-1.scope, which has
    // processes, so its children cannot get controllers (EBUSY).
    let scope = "root/user.slice/user-1000.slice/session-1.scope";
    let tree = fake_cgroups(&[
        ("root/cgroup.controllers", "cpuset cpu io memory pids\n"),
        (
            &format!("{scope}/cgroup.controllers"),
            "cpu io memory pids\n",
        ),
        (&format!("{scope}/cgroup.subtree_control"), ""),
        (&format!("{scope}/cgroup.procs"), "1234\n"),
    ])?;
    let out = doctor_with_cgroups(&tree, "0::/user.slice/user-1000.slice/session-1.scope\n")?;
    contains(
        check_line(&out, "ok", "cgroups")?,
        &[
            "v2 (unified)",
            "EBUSY",
            "beside it, beneath /user.slice/user-1000.slice, as runc does",
        ],
    )?;
    out.expect_code(0)?;

    // ... unless the slice holds processes too: then nothing there can get controllers.
    write(
        tree.path()
            .join("root/user.slice/user-1000.slice/cgroup.procs"),
        "999\n",
    )?;
    let out = doctor_with_cgroups(&tree, "0::/user.slice/user-1000.slice/session-1.scope\n")?;
    contains(
        check_line(&out, "FAIL", "cgroups")?,
        &["both", "hold processes", "systemd-run --scope"],
    )?;
    blocks(&out, "ch04-cgroups")?;

    // The shell's own cgroup is not in the tree (cgroup2 mounted somewhere else).
    let out = doctor_with_cgroups(&tree, "0::/system.slice/elsewhere.service\n")?;
    check_line(&out, "FAIL", "cgroups")?;
    blocks(&out, "ch04-cgroups")?;

    // Hybrid, with no pids hierarchy.
    let tree = fake_cgroups(&[
        ("root/unified/cgroup.controllers", ""),
        ("root/cpu/", ""),
        ("root/memory/", ""),
    ])?;
    let out = doctor_with_cgroups(&tree, "4:memory:/\n2:cpu,cpuacct:/\n0::/\n")?;
    contains(
        check_line(&out, "FAIL", "cgroups")?,
        &["hybrid", "no usable v1 hierarchy for pids"],
    )?;
    blocks(&out, "ch04-cgroups")?;

    // v1 without a freezer hierarchy: chapters 4 and 5 run, chapter 6 cannot pause.
    let tree = fake_cgroups(&[
        ("root/cpu/", ""),
        ("root/memory/", ""),
        ("root/pids/", ""),
        ("root/devices/", ""),
    ])?;
    let v1_self = "7:devices:/\n5:pids:/\n4:memory:/\n2:cpu,cpuacct:/\n";
    let out = doctor_with_cgroups(&tree, v1_self)?;
    contains(
        check_line(&out, "FAIL", "cgroups")?,
        &[
            "v1: cpu memory pids usable, but no usable v1 hierarchy for freezer,",
            "fix: mkdir -p ",
            "/root/freezer && mount -t cgroup -o freezer cgroup ",
        ],
    )?;
    blocks(&out, "ch06-full-runtime")?;

    // ... and without devices: only a config with device rules is refused.
    fs::create_dir_all(tree.path().join("root/freezer"))?;
    let out = doctor_with_cgroups(
        &tree,
        "8:freezer:/\n5:pids:/\n4:memory:/\n2:cpu,cpuacct:/\n",
    )?;
    contains(
        check_line(&out, "warn", "cgroups")?,
        &[
            "no usable v1 hierarchy for devices",
            "device rules",
            "fix: mkdir -p ",
        ],
    )?;
    out.expect_code(0)?;

    // A complete v1 layout passes.
    let out = doctor_with_cgroups(&tree, &format!("8:freezer:/\n{v1_self}"))?;
    contains(
        check_line(&out, "ok", "cgroups")?,
        &["v1: cpu memory pids freezer devices usable"],
    )?;
    out.expect_code(0)?;
    Ok(())
}

fn doctor_overlay_on_overlay() -> Result<()> {
    // The state directory on an overlayfs (as inside a Docker container): an
    // overlay's upper directory cannot be on another overlay. The test's
    // overlay lives in a private mount namespace that ends with the command.
    let dir = tempfile::tempdir()?;
    let d = path_str(dir.path())?;
    let before = mounts()?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"mkdir "$1/l" "$1/u" "$1/w" "$1/m" &&
               mount -t overlay overlay -o "lowerdir=$1/l,upperdir=$1/u,workdir=$1/w" "$1/m" &&
               exec "$2" --state-dir "$1/m/containers-from-scratch""#,
        )
        .arg("sh")
        .arg(d)
        .arg(workspace().join("scripts/doctor"));
    let out = output(cmd)?;
    contains(
        check_line(&out, "FAIL", "overlayfs")?,
        &["(overlayfs) fails", "not on an overlay"],
    )?;
    blocks(&out, "ch05-overlay")?;
    assert_mounts_unchanged(&before)
}

/// A sysctl tree like /proc/sys with the given (path, value) files.
fn fake_sysctls(files: &[(&str, &str)]) -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for (path, value) in files {
        write(dir.path().join(path), &format!("{value}\n"))?;
    }
    Ok(dir)
}

const SECCOMP: (&str, &str) = (
    "kernel/seccomp/actions_avail",
    "kill_process kill_thread trap errno user_notif trace log allow",
);

fn doctor_sysctl_checks() -> Result<()> {
    let sys = fake_sysctls(&[SECCOMP, ("user/max_user_namespaces", "0")])?;
    let out = doctor(&["--proc-sys", path_str(sys.path())?])?;
    contains(
        check_line(&out, "FAIL", "user namespaces")?,
        &["max_user_namespaces is 0"],
    )?;
    blocks(&out, "ch06-full-runtime")?;

    // Ubuntu 23.10+: AppArmor keeps normal users from creating user
    // namespaces; root still can, so it is a warning.
    let sys = fake_sysctls(&[
        SECCOMP,
        ("user/max_user_namespaces", "15000"),
        ("kernel/apparmor_restrict_unprivileged_userns", "1"),
    ])?;
    let out = doctor(&["--proc-sys", path_str(sys.path())?])?;
    let line = check_line(&out, "warn", "user namespaces")?;
    contains(
        line,
        &["apparmor_restrict_unprivileged_userns=1", "fix: sysctl -w"],
    )?;
    out.expect_code(0)?;
    // The troubleshooting appendix quotes this line.
    let page = fs::read_to_string(workspace().join("book/src/troubleshooting.md"))?;
    ensure!(
        page.lines().any(|l| l == line),
        "book/src/troubleshooting.md does not quote doctor's line\n{line}"
    );

    let sys = fake_sysctls(&[
        SECCOMP,
        ("user/max_user_namespaces", "15000"),
        ("kernel/unprivileged_userns_clone", "0"),
    ])?;
    let out = doctor(&["--proc-sys", path_str(sys.path())?])?;
    check_line(&out, "warn", "user namespaces")?;
    out.expect_code(0)?;

    // No seccomp filters in the kernel.
    let sys = fake_sysctls(&[("user/max_user_namespaces", "15000")])?;
    let out = doctor(&["--proc-sys", path_str(sys.path())?])?;
    contains(
        check_line(&out, "FAIL", "seccomp")?,
        &["no seccomp filter support"],
    )?;
    blocks(&out, "ch06-full-runtime")
}

fn doctor_old_kernel() -> Result<()> {
    let out = doctor(&["--kernel", "4.19.0-27-amd64"])?;
    contains(
        check_line(&out, "warn", "kernel")?,
        &["older than 5.10", "fix: "],
    )?;
    out.expect_code(0)?;
    Ok(())
}

fn doctor_without_ip() -> Result<()> {
    // A PATH with every command of /usr/bin and /usr/sbin but ip.
    let dir = tempfile::tempdir()?;
    for from in ["/usr/bin", "/usr/sbin"] {
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            let link = dir.path().join(entry.file_name());
            if entry.file_name() != "ip" && !exists(&link) {
                std::os::unix::fs::symlink(entry.path(), link)?;
            }
        }
    }
    let mut cmd = script("doctor");
    cmd.env("PATH", dir.path());
    let out = output(cmd)?;
    contains(
        check_line(&out, "FAIL", "veth")?,
        &["ip (iproute2) is missing", "apt-get install iproute2"],
    )?;
    blocks(&out, "ch06-full-runtime")
}

fn doctor_bad_arguments() -> Result<()> {
    let out = doctor(&["--bogus"])?;
    out.expect_code(2)?;
    ensure!(
        out.stderr.trim() == "doctor: unknown argument --bogus: see scripts/doctor --help",
        "{:?}",
        out.stderr
    );
    Ok(())
}

// --- reset -----------------------------------------------------------------------

fn scripts_are_executable() -> Result<()> {
    for name in [
        "doctor",
        "reset",
        "vm-test",
        "leftovers",
        "provision",
        "vm/guest-init",
        "vm/initramfs-init",
    ] {
        let path = workspace().join("scripts").join(name);
        let mode = fs::metadata(&path)
            .with_context(|| format!("no {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o111 == 0 {
            bail!("{} is not executable", path.display());
        }
    }
    Ok(())
}

/// The README's two commands stay true: each `sudo scripts/NAME` of its
/// ```sh block names an executable script of this checkout, and CI runs the
/// same provision and test scripts.
fn readme_commands_exist() -> Result<()> {
    let readme = fs::read_to_string(workspace().join("README.md"))?;
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .context("README.md has no ```sh block")?;
    let commands: Vec<&str> = block
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    ensure!(
        commands
            == [
                "sudo scripts/provision && sudo scripts/demo",
                "sudo scripts/provision && sudo scripts/test"
            ],
        "README's commands changed: {commands:?}"
    );
    for name in ["provision", "demo", "test"] {
        let path = workspace().join("scripts").join(name);
        let mode = fs::metadata(&path)
            .with_context(|| format!("README names {}, which is missing", path.display()))?
            .permissions()
            .mode();
        ensure!(mode & 0o111 != 0, "{} is not executable", path.display());
    }
    let ci = fs::read_to_string(workspace().join(".ci/run"))?;
    for step in ["bash scripts/provision", "bash scripts/test"] {
        ensure!(ci.contains(step), ".ci/run does not run {step}");
    }
    Ok(())
}

fn main() -> ExitCode {
    cfs_tests::main(vec![
        cfs_tests::plain("scripts_are_executable", scripts_are_executable),
        cfs_tests::plain("readme_commands_exist", readme_commands_exist),
        root("doctor_passes_here", doctor_passes_here),
        root("doctor_as_a_normal_user", doctor_as_a_normal_user),
        root("doctor_without_capabilities", doctor_without_capabilities),
        root(
            "doctor_kernel_without_user_namespaces",
            doctor_kernel_without_user_namespaces,
        ),
        root("doctor_missing_rootfs", doctor_missing_rootfs),
        root("doctor_dynamic_busybox", doctor_dynamic_busybox),
        root("doctor_cgroup_checks", doctor_cgroup_checks),
        root("doctor_overlay_on_overlay", doctor_overlay_on_overlay),
        root("doctor_sysctl_checks", doctor_sysctl_checks),
        root("doctor_old_kernel", doctor_old_kernel),
        root("doctor_without_ip", doctor_without_ip),
        root("doctor_bad_arguments", doctor_bad_arguments),
    ])
}
