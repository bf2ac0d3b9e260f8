//! The system calls a jail refuses: the kernel's riskiest surfaces that no
//! interpreter needs (key rings, BPF, perf, userfaultfd, io_uring, ptrace
//! and cross-process memory, kexec and modules, mounts, namespaces) and
//! the terminal ioctls that push input into another session (`TIOCSTI`,
//! `TIOCLINUX`). Everything else is allowed: the jail's namespaces, uid
//! and limits do the rest. Compiled by `seccompiler` into the classic BPF
//! program bubblewrap loads (`--seccomp FD`) just before the command runs.

use std::{collections::BTreeMap, path::Path};

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

/// Refused outright, answering `EPERM`.
pub const DENIED: [(&str, i64); 33] = [
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("acct", libc::SYS_acct),
];

/// `ioctl` requests refused: typing into another terminal's input, and
/// the Linux console's.
const DENIED_IOCTLS: [u64; 2] = [libc::TIOCSTI, libc::TIOCLINUX];

fn target() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| format!("no seccomp filter for {}", std::env::consts::ARCH))
}

/// The filter as the bytes of a `struct sock_filter` array.
pub fn program() -> Result<Vec<u8>, String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|(_, nr)| (*nr, Vec::new())).collect();
    let ioctl_rules = DENIED_IOCTLS
        .iter()
        .map(|request| {
            let condition =
                SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *request)
                    .map_err(|e| e.to_string())?;
            SeccompRule::new(vec![condition]).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        target()?,
    )
    .map_err(|e| e.to_string())?;
    let mut program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    if cfg!(target_arch = "x86_64") {
        refuse_x32(&mut program)?;
    }
    Ok(program
        .iter()
        .flat_map(|i| {
            let mut bytes = [0; 8];
            bytes[..2].copy_from_slice(&i.code.to_ne_bytes());
            bytes[2] = i.jt;
            bytes[3] = i.jf;
            bytes[4..].copy_from_slice(&i.k.to_ne_bytes());
            bytes
        })
        .collect())
}

/// The x32 ABI's calls carry the x86-64 architecture and their number with
/// bit 30 set (`keyctl` is `0x4000_00fa`), so a list of x86-64 numbers
/// never matches them: where the kernel has x32, every denied call would
/// pass that way. No interpreter here uses x32, so all of it is refused,
/// right after the architecture check `seccompiler` starts with.
fn refuse_x32(program: &mut BpfProgram) -> Result<(), String> {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const LOAD_WORD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    // `struct seccomp_data`: the call's number, then the architecture.
    let (nr_offset, arch_offset) = (0, 4);
    let checks_arch = program.len() > 3 && {
        let load = &program[0];
        load.code == LOAD_WORD && load.k == arch_offset
    };
    if !checks_arch {
        return Err("seccompiler's filter no longer starts with its architecture check".into());
    }
    let statement = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let guard = [
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, nr_offset),
        sock_filter {
            jf: 1,
            ..statement(
                libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
                X32_SYSCALL_BIT,
            )
        },
        statement(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
    ];
    program.splice(3..3, guard);
    Ok(())
}

/// Writes the filter to `path`, readable by every uid (jails open it as
/// theirs; it holds nothing secret).
pub fn write(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let program = program().map_err(std::io::Error::other)?;
    std::fs::write(path, program)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

/// The same denylist as a Docker seccomp profile (its JSON): everything
/// allowed but [`DENIED`] and the refused `ioctl`s, which answer `EPERM`.
pub fn docker_profile() -> String {
    let eperm = i64::from(libc::EPERM);
    let mut syscalls = vec![serde_json::json!({
        "names": DENIED.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": eperm,
    })];
    syscalls.extend(DENIED_IOCTLS.iter().map(|request| {
        serde_json::json!({
            "names": ["ioctl"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": eperm,
            "args": [{"index": 1, "value": request, "op": "SCMP_CMP_EQ"}],
        })
    }));
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": syscalls,
    })
    .to_string()
}
