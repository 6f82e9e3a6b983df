//! Chapter 3: a mount namespace, a rootfs, pivot_root versus chroot, fresh
//! /proc and /dev, and no mount leaking to the host.
//!
//! The tests declared with `check` are also lab ch03's checks (`scripts/lab
//! check ch03`): each says what it verifies and gives a hint for when it fails.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use cfs_tests::kernel::{children, ns_inode, runs_command};
use cfs_tests::paths::{rootfs, static_dir};
use cfs_tests::run::{chapter, output, run, wait_for, Background};
use cfs_tests::shared_host::SharedHost;
use cfs_tests::{bail, check, ensure, root, Context, Result};
use nix::sys::signal::Signal;

const BIN: &str = "ch03-mount-chroot";

/// `ch03-mount-chroot --rootfs $ROOTFS -- sh -c SCRIPT`, run to the end in a
/// stand-in host whose mounts are shared (see [`contained`]).
fn sh(script: &str) -> Result<cfs_tests::run::Output> {
    let rootfs = rootfs()?;
    let rootfs = rootfs.to_string_lossy();
    contained(&["--rootfs", &rootfs, "--", "sh", "-c", script])
}

/// Runs the runtime with `args` to the end inside a [`SharedHost`] made for
/// this run (a host whose mounts are shared, as on systemd hosts: what the
/// runtime's mistakes do to such a host shows on any machine, and nothing
/// reaches the real one), then requires that the stand-in host's mount table
/// is what it was before the run and that the run left no `.oldroot-*`
/// directory in the rootfs (the `--rootfs` argument), whatever its exit code.
fn contained(args: &[&str]) -> Result<cfs_tests::run::Output> {
    contained_with(args, |_| Ok(()))
}

/// [`contained`], with `inspect` judging the run's output after the mount
/// table and before the `.oldroot-*` left in the rootfs.
fn contained_with(
    args: &[&str],
    inspect: impl FnOnce(&cfs_tests::run::Output) -> Result<()>,
) -> Result<cfs_tests::run::Output> {
    let dir = args
        .iter()
        .position(|a| *a == "--rootfs")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .context("contained needs --rootfs")?;
    let host = SharedHost::new()?;
    let before = host.mounts()?;
    let old_before = old_roots(&dir);
    let out = output(host.command(chapter(BIN, args)))?;
    let said = |out: &cfs_tests::run::Output| {
        let last = out.stderr.lines().rev().find(|l| !l.trim().is_empty());
        format!(
            "(the runtime exited {}{})",
            out.code,
            last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
        )
    };
    host.assert_mounts_unchanged(&before)
        .map_err(|err| cfs_tests::anyhow!("{err:#} {}", said(&out)))?;
    inspect(&out)?;
    let left: Vec<String> = old_roots(&dir).difference(&old_before).cloned().collect();
    ensure!(
        left.is_empty(),
        "the run left {left:?} in the rootfs {}: the put_old directory stays after a run or \
         a failed attempt {}",
        dir.display(),
        said(&out)
    );
    Ok(out)
}

/// The `.oldroot-*` entries of a rootfs (put_old directories, see pivot_root).
fn old_roots(rootfs: &Path) -> BTreeSet<String> {
    std::fs::read_dir(rootfs)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".oldroot"))
                .collect()
        })
        .unwrap_or_default()
}

/// A private copy of the default rootfs, for tests that add files to it.
fn rootfs_copy(dir: &Path) -> Result<PathBuf> {
    let copy = dir.join("rootfs");
    let status = Command::new("cp")
        .arg("-a")
        .arg(rootfs()?)
        .arg(&copy)
        .status()
        .context("failed to run cp")?;
    ensure!(status.success(), "failed to copy the rootfs");
    Ok(copy)
}

fn static_helper(name: &str) -> Result<PathBuf> {
    let path = static_dir().join(name);
    ensure!(
        path.exists(),
        "{} is missing: run scripts/build",
        path.display()
    );
    Ok(path)
}

/// Runs `chroot-escape` in a container, with `extra` flags, and returns what
/// it printed. The marker file lives on the host, outside the rootfs.
fn escape_attempt(extra: &[&str]) -> Result<(i32, String, String)> {
    let dir = tempfile::tempdir()?;
    let rootfs = rootfs_copy(dir.path())?;
    std::fs::copy(
        static_helper("chroot-escape")?,
        rootfs.join("bin/chroot-escape"),
    )?;
    let marker = dir.path().join("host-marker");
    std::fs::write(&marker, "written by the host\n")?;
    let mut args = extra.to_vec();
    let rootfs = rootfs.to_string_lossy().into_owned();
    let marker = marker.to_string_lossy().into_owned();
    args.extend(["--rootfs", &rootfs, "--", "chroot-escape", &marker]);
    let out = if extra.is_empty() {
        contained(&args)?
    } else {
        run(BIN, &args)?
    };
    Ok((out.code, out.stdout, out.stderr))
}

/// The host's files must be out of reach inside: the test writes a marker
/// file on the host, outside the rootfs (not a fixed directory of one
/// machine, which another checkout, such as the VM's /vagrant, lacks), and
/// looks for it inside, at its path and anywhere under `/`. A half-done
/// pivot_root leaves the old root (the host's `/`) mounted at `/.oldroot-*`,
/// or at least its directory: neither may be there, and the container's own
/// mount table (mountinfo lists what its root can reach) must hold nothing of
/// the host: no mount under `/.oldroot-*`, and no mount of the rootfs's file
/// system from outside the rootfs.
fn root_is_the_rootfs_and_host_files_are_hidden() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("cfs-ch03-host-")
        .tempdir()?;
    let name = format!("cfs-ch03-marker-{}", std::process::id());
    let marker = dir.path().join(&name);
    std::fs::write(&marker, "written by the host\n")?;
    ensure!(marker.exists(), "the marker was not written");
    let script = format!(
        "cat /etc/rootfs-release; test -e /.mkrootfs-stamp && echo rootfs; \
         test -e {marker} && echo host-visible; \
         find / -path /proc -prune -o -path /sys -prune -o -name {name} -print; \
         ls -a / | grep oldroot; echo mountinfo:; cat /proc/self/mountinfo",
        marker = marker.display()
    );
    let rootfs = rootfs()?;
    let rootfs = rootfs.to_string_lossy();
    // What the container saw comes first; what the run left in the rootfs after.
    contained_with(&["--rootfs", &rootfs, "--", "sh", "-c", &script], |out| {
        out.expect_code(0)?;
        inspect_root(&out.stdout, &marker)
    })?;
    Ok(())
}

/// The verdict on what the container of [`root_is_the_rootfs_and_host_files_are_hidden`]
/// printed: its head (release, stamp, marker, old roots), then its mountinfo.
fn inspect_root(stdout: &str, marker: &Path) -> Result<()> {
    let (head, mountinfo) = stdout
        .split_once("mountinfo:\n")
        .with_context(|| format!("stdout: {stdout:?}"))?;
    // Fields: ID, parent ID, major:minor, root within its file system, mount point.
    let mounts: Vec<Vec<&str>> = mountinfo
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    let root = mounts
        .iter()
        .find(|f| f.get(4) == Some(&"/"))
        .with_context(|| format!("no mount at / inside:\n{mountinfo}"))?;
    for fields in &mounts {
        let (dev, within, point) = (fields[2], fields[3], fields[4]);
        ensure!(
            !point.starts_with("/.oldroot"),
            "the old root is still mounted inside, at {point}:\n{mountinfo}"
        );
        ensure!(
            dev != root[2] || Path::new(within).starts_with(root[3]),
            "{point} inside is {within} of the rootfs's file system, outside the rootfs:\n{mountinfo}"
        );
    }
    ensure!(
        head == "containers-from-scratch busybox rootfs\nrootfs\n",
        "the host's marker {} or an old root is visible inside: {head:?}",
        marker.display()
    );
    Ok(())
}

/// Hints that follow the failure (see `cfs_tests::lab::hints`): the first
/// whose pattern matches a failed check's message is shown before its own.
const HINTS: &[(&str, &str)] = &[
    (
        r"pivot_root.*(EINVAL|Invalid argument)",
        "pivot_root(2) said EINVAL: the new root, or the mount it sits on, is shared (see its \
         man page's EINVAL list): make_private must have made every mount of the new \
         namespace private before; to see it by hand, run the runtime inside `unshare --mount \
         --propagation shared`",
    ),
    (
        r"pivot_root to .*(EBUSY|Device or resource busy)",
        "pivot_root(2) said EBUSY: put_old must be a directory under the new root (see its \
         man page), not elsewhere on the host",
    ),
    (
        r"unmount.*(EBUSY|Device or resource busy)",
        "umount2(2) said EBUSY: the old root is still in use (the runtime's own files are on \
         it): detach it lazily, MNT_DETACH",
    ),
    (
        r#"removed \[""#,
        "the host lost mounts: the lazy unmount of the old root reached mounts that are still \
         shared with the host: make_private changed \"/\" only; it must be recursive, MS_REC \
         (mount_namespaces(7))",
    ),
    (
        r#"changed.*added \[""#,
        "mounts made in the container appeared on the host: they propagated, because the \
         container's mounts are still shared: make_private must make them private, all of \
         them, before the first mount",
    ),
    (
        r#"left \[".oldroot"#,
        "a .oldroot-* directory was left in the rootfs: pivot_root must rmdir(2) its put_old \
         after the umount2, and remove it when pivot_root(2) fails (scripts/lab reset DIR \
         removes old ones)",
    ),
    (
        r"old root is still mounted|host-visible|outside the rootfs|\.oldroot-\w+/",
        "the old root (the host's /) is still reachable after pivot_root(2): umount2(2) it, \
         then rmdir(2) its directory",
    ),
    (
        r"oldroot",
        "a .oldroot-* directory is in the container's /: pivot_root must rmdir(2) its put_old \
         once the old root is unmounted (scripts/lab reset DIR removes those left by earlier \
         attempts)",
    ),
    (
        r"ps shows|PID 1 is not",
        "the /proc inside is not a proc filesystem of the container's own: mount_proc must \
         mount(2) one (type proc) on /proc, after the root changed",
    ),
    (
        r"proc /proc proc ro",
        "/proc is read-only: mount proc without MS_RDONLY",
    ),
    (
        r"proc /proc proc rw[^n]*\\n|proc /proc proc rw,[a-z]+\\n",
        "/proc lacks nosuid, nodev or noexec: mount it with MS_NOSUID|MS_NODEV|MS_NOEXEC, as \
         every pseudo-filesystem of a container",
    ),
    (
        r"block special file",
        "these are block devices: mknod(2) needs S_IFCHR for character devices",
    ),
    (
        r"1:3 6[0-4][0-4]",
        "mknod(2) applies the umask: chmod(2) each device to 0666 after making it",
    ),
    (
        r"/dev/shm",
        "/dev/shm is missing: mount a tmpfs on it (mode=1777)",
    ),
    (
        r"ptmx\\n(\\n|\x22|$)|/proc/self/fd",
        "the /dev symlinks are missing: make each of SYMLINKS with symlink(2)",
    ),
];

fn main() -> ExitCode {
    cfs_tests::lab::hints(HINTS);
    cfs_tests::main(vec![
        check(
            "root_is_the_rootfs_and_host_files_are_hidden",
            "inside, / is the rootfs (its /etc/rootfs-release and /.mkrootfs-stamp are there); \
             a marker file the test wrote on the host, outside the rootfs, is found neither at \
             its path nor anywhere under /; / has no .oldroot-* entry; and /proc/self/mountinfo \
             shows no mount under /.oldroot-* and nothing of the rootfs's file system outside it",
            "setup calls pivot_root(rootfs) after bind_to_itself: pivot_root(2) needs a put_old \
             directory under the new root; then chdir(\"/\"), detach the old root and remove \
             its directory",
            root_is_the_rootfs_and_host_files_are_hidden,
        ),
        check(
            "ps_lists_only_the_container_and_pid_1_is_the_command",
            "ps inside lists two processes, sh as PID 1 and ps itself, and /proc/1/comm is sh: \
             the /proc mounted inside shows the new PID namespace",
            "mount_proc creates /proc and mounts a new proc filesystem there, after the root \
             changed: a proc mount shows the PID namespace of the process that mounts it",
            || {
                let out = sh("ps -o pid,comm; cat /proc/1/comm; true")?;
                out.expect_code(0)?;
                let lines: Vec<&str> = out.stdout.lines().collect();
                ensure!(
                    lines.len() == 4,
                    "ps shows more than sh and ps: {:?}",
                    out.stdout
                );
                ensure!(
                    lines[1].split_whitespace().collect::<Vec<_>>() == ["1", "sh"],
                    "{lines:?}"
                );
                ensure!(lines[3] == "sh", "PID 1 is not the command: {lines:?}");
                Ok(())
            },
        ),
        check(
            "dev_null_is_char_device_1_3_and_works",
            "stat(2) of /dev/null inside: a character device 1:3, mode 666; writes to it vanish, \
             /dev/zero reads zeros, /dev/pts holds a ptmx of its own, and /dev/fd, /dev/stdin \
             and /dev/ptmx are the symlinks of SYMLINKS",
            "mount_dev: a tmpfs on /dev first, then mknod(2) with S_IFCHR and makedev(major, \
             minor) for each of DEVICES (chmod 0666: mknod applies the umask), then devpts \
             with newinstance",
            || {
                let out = sh("stat -c '%F %t:%T %a' /dev/null; echo data >/dev/null && wc -c </dev/null; head -c 4 /dev/zero | wc -c; ls /dev/pts; for l in fd stdin ptmx; do readlink /dev/$l; done; true")?;
                out.expect_code(0)?;
                ensure!(
                    out.stdout
                        == "character special file 1:3 666\n0\n4\nptmx\n/proc/self/fd\n/proc/self/fd/0\npts/ptmx\n",
                    "stdout: {:?}",
                    out.stdout
                );
                Ok(())
            },
        ),
        check(
            "sys_is_read_only_and_proc_is_fresh",
            "/proc/mounts inside lists a proc filesystem on /proc, read-write, nosuid, nodev, \
             noexec, and sysfs on /sys, read-only (touch /sys/x fails)",
            "mount_proc mounts a filesystem of type \"proc\" with source \"proc\" on /proc, \
             writable, with no set-user-ID programs, devices or programs to run on it",
            || {
                let out = sh("grep -E ' /(proc|sys) ' /proc/mounts | cut -d' ' -f1-4 | cut -d, -f1-4; touch /sys/x 2>/dev/null || echo sys-readonly")?;
                out.expect_code(0)?;
                ensure!(
                    out.stdout
                        == "proc /proc proc rw,nosuid,nodev,noexec\nsysfs /sys sysfs ro,nosuid,nodev,noexec\nsys-readonly\n",
                    "/proc/mounts inside: {:?}",
                    out.stdout
                );
                Ok(())
            },
        ),
        root("dev_and_its_mounts_run_no_set_user_id_programs", || {
            // Like /proc, the filesystems mount_dev mounts hold no
            // set-user-ID program, and those under /dev run none; /dev/shm
            // holds no device.
            let out = sh("grep -E ' /dev(/pts|/shm)? ' /proc/mounts")?;
            out.expect_code(0)?;
            for (target, wanted) in [
                ("/dev", &["nosuid"][..]),
                ("/dev/pts", &["nosuid", "noexec"][..]),
                ("/dev/shm", &["nosuid", "nodev", "noexec"][..]),
            ] {
                let line = out
                    .stdout
                    .lines()
                    .find(|line| line.split(' ').nth(1) == Some(target))
                    .with_context(|| format!("no {target} in /proc/mounts inside: {out:?}"))?;
                let options: Vec<&str> = line.split(' ').nth(3).unwrap_or("").split(',').collect();
                for option in wanted {
                    ensure!(
                        options.contains(option),
                        "{target} is mounted without {option}: {line}"
                    );
                }
            }
            Ok(())
        }),
        root("environment_is_the_default_one", || {
            let rootfs = rootfs()?;
            let mut cmd = chapter(
                BIN,
                &[
                    "--rootfs",
                    &rootfs.to_string_lossy(),
                    "--",
                    "sh",
                    "-c",
                    "echo $PATH; echo ${CFS_HOST_SECRET:-unset}; echo $HOME",
                ],
            );
            cmd.env("CFS_HOST_SECRET", "leaked");
            let out = output(cmd)?;
            out.expect_code(0)?;
            ensure!(
                out.stdout == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nunset\n/root\n",
                "stdout: {:?}",
                out.stdout
            );
            Ok(())
        }),
        check(
            "container_mounts_never_reach_the_host",
            "in a stand-in host whose mounts are all shared (as systemd makes them; \
             unshare --propagation shared), /proc/<host>/mountinfo is unchanged while the \
             container runs its command (its own mountinfo lists its /dev/shm) and after it \
             exited 0; the container's /proc/<pid>/ns/mnt differs from the host's",
            "make_private runs first in the new mount namespace and must reach every mount in \
             it, not only \"/\": read mount_namespaces(7) on shared subtrees and what a \
             recursive propagation change is",
            || {
                let host = SharedHost::new()?;
                let before = host.mounts()?;
                let rootfs = rootfs()?;
                let mut bg = Background::start(host.command(chapter(
                    BIN,
                    &["--rootfs", &rootfs.to_string_lossy(), "--", "sleep", "3"],
                )))?;
                let child = bg
                    .first_child(Duration::from_secs(5))
                    .context("the runtime ended before the test saw its container")?;
                // Wait until the container runs its command, all set up.
                let child = child.to_string();
                let running = wait_for(Duration::from_secs(5), || {
                    match std::fs::read_link(format!("/proc/{child}/exe")) {
                        Err(_) => Some(false),
                        Ok(exe) if exe.ends_with(BIN) => None,
                        Ok(_) => Some(true),
                    }
                })
                .context("the container never ran its command")?;
                if !running {
                    bg.finish(Duration::from_secs(10))?.expect_code(0)?;
                    bail!("the container ended before the test could look at it");
                }
                let table = std::fs::read_to_string(format!("/proc/{child}/mountinfo"))?;
                ensure!(
                    table.contains(" /dev/shm "),
                    "no /dev/shm in the container's mountinfo:\n{table}"
                );
                ensure!(
                    ns_inode(&child, "mnt")? != ns_inode(host.pid(), "mnt")?,
                    "no new mount namespace"
                );
                host.assert_mounts_unchanged(&before)
                    .context("while the container runs")?;
                bg.finish(Duration::from_secs(10))?.expect_code(0)?;
                host.assert_mounts_unchanged(&before)
                    .context("after the container ended")
            },
        ),
        check(
            "no_leak_when_the_command_fails",
            "in a stand-in host whose mounts are shared, after a command that exits 3 and one \
             that is not in the rootfs (exit 1), the host's mountinfo is what it was before \
             and the rootfs holds no new .oldroot-* directory",
            "every mount happens in the container's own mount namespace, made private first \
             (make_private); nothing needs unmounting: the namespace goes with its last \
             process; and a put_old directory goes, also when a step after mkdtemp fails",
            || {
                sh("exit 3")?.expect_code(3)?;
                let rootfs = rootfs()?;
                contained(&[
                    "--rootfs",
                    &rootfs.to_string_lossy(),
                    "--",
                    "/bin/no-such-program",
                ])?
                .expect_code(1)?;
                Ok(())
            },
        ),
        root("sigkill_of_the_runtime_takes_the_container_down", || {
            // In a stand-in host: the machine's own mount table changes with
            // the work of others running beside the tests.
            let host = SharedHost::new()?;
            let before = host.mounts()?;
            let rootfs = rootfs()?;
            let bg = Background::start(host.command(chapter(
                BIN,
                &["--rootfs", &rootfs.to_string_lossy(), "--", "sleep", "30"],
            )))?;
            let old_before = old_roots(&rootfs);
            let child = wait_for(Duration::from_secs(5), || {
                children(bg.pid()).first().copied()
            })?;
            // Killed once `sleep` runs, after the set-up: a kill between
            // mkdtemp and rmdir would leave the put_old directory (reset
            // removes such an empty one), which is not what this test is about.
            wait_for(Duration::from_secs(20), || {
                runs_command(child, "sleep").then_some(())
            })
            .context("the container's command never ran")?;
            bg.signal(Signal::SIGKILL)?;
            let out = bg.finish(Duration::from_secs(10))?;
            ensure!(out.code == 137, "runtime exit {}", out.code);
            // PR_SET_PDEATHSIG: the container's PID 1 dies with the runtime, and
            // with it the namespace and every mount in it.
            wait_for(Duration::from_secs(5), || {
                (!Path::new(&format!("/proc/{child}")).exists()).then_some(())
            })
            .context("the container outlived its runtime")?;
            host.assert_mounts_unchanged(&before)?;
            let left: Vec<String> = old_roots(&rootfs)
                .difference(&old_before)
                .cloned()
                .collect();
            ensure!(left.is_empty(), "the run left {left:?} in the rootfs");
            Ok(())
        }),
        root("chroot_can_be_escaped", || {
            let (code, stdout, _) = escape_attempt(&["--chroot"])?;
            ensure!(
                code == 0 && stdout.starts_with("escaped: read "),
                "exit {code}: {stdout}"
            );
            ensure!(
                stdout.trim_end().ends_with("written by the host"),
                "{stdout}"
            );
            Ok(())
        }),
        check(
            "pivot_root_cannot_be_escaped",
            "chroot-escape (chroot(2) into a subdirectory, then chdir(\"..\") upwards) cannot \
             read a file of the host after pivot_root: it says \"still inside\" and exits 1",
            "pivot_root must detach the old root after pivot_root(2): umount2 it with \
             MNT_DETACH (its path is now under /) and remove the put_old directory",
            || {
                let (code, stdout, stderr) = escape_attempt(&[])?;
                ensure!(
                    code == 1 && stdout.starts_with("still inside: "),
                    "exit {code}: {stdout}\nstderr: {stderr}"
                );
                Ok(())
            },
        ),
        root("bad_rootfs_is_a_one_line_error_and_leaves_nothing", || {
            let host = SharedHost::new()?;
            let before = host.mounts()?;
            let empty = tempfile::tempdir()?;
            let empty = empty.path().to_string_lossy().into_owned();
            let cases: [(&[&str], &str); 3] = [
                (&["--rootfs", "/no/such/dir", "--", "sh"], "ch03-mount-chroot: rootfs /no/such/dir is not a directory: build one with scripts/mkrootfs"),
                (&["--rootfs", "build/rootfs", "--", "sh"], "ch03-mount-chroot: rootfs must be an absolute path, not build/rootfs (try --rootfs \"$PWD/build/rootfs\")"),
                (&["--rootfs", &empty, "--", "sh"], &format!("ch03-mount-chroot: command sh not found in rootfs {empty} (is it a rootfs? scripts/mkrootfs builds one)")),
            ];
            for (args, message) in cases {
                let out = output(host.command(chapter(BIN, args)))?;
                out.expect_code(1)?;
                ensure!(out.stderr.trim_end() == message, "stderr: {:?}", out.stderr);
            }
            host.assert_mounts_unchanged(&before)
        }),
        root("with_init_ps_shows_init_and_command", || {
            let rootfs = rootfs()?;
            let out = run(
                BIN,
                &[
                    "--init",
                    "--rootfs",
                    &rootfs.to_string_lossy(),
                    "--",
                    "ps",
                    "-o",
                    "pid,comm",
                ],
            )?;
            out.expect_code(0)?;
            let pids: Vec<&str> = out
                .stdout
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            ensure!(pids == ["1", "2"], "stdout: {:?}", out.stdout);
            Ok(())
        }),
    ])
}
