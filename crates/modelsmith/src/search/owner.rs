//! Who runs a trial: the process's machine scope, pid and start time, so that a later process
//! can tell whether a "running" trial's worker still exists.
//!
//! A pid means something only inside its PID namespace on one boot of one kernel: two
//! containers with the same hostname (docker `--network host`, Kubernetes `hostNetwork`) each
//! have a pid 7 of their own. So the scope stored with a trial ([`Owner::host`]) is the
//! hostname, the kernel's boot id and the PID namespace together, and a trial's worker is
//! judged gone from /proc only by a process in that same scope; everyone else waits for its
//! heartbeat to go stale.

use crate::record::Owner;

/// This process.
pub fn current_owner() -> Owner {
    let pid = std::process::id();
    Owner {
        host: scope(),
        pid,
        start_ticks: process_start_ticks(pid).unwrap_or(0),
    }
}

/// True only when we can be sure: same scope (hostname, boot, PID namespace), and no process
/// with that pid and start time. Owners elsewhere are judged by their heartbeats instead.
pub fn owner_is_dead(owner: &Owner) -> bool {
    if !cfg!(target_os = "linux") || !same_scope(&owner.host, &scope()) {
        return false;
    }
    match process_start_ticks(owner.pid) {
        None => true,
        Some(ticks) => owner.start_ticks != 0 && ticks != owner.start_ticks,
    }
}

/// Whether pids recorded in scope `theirs` can be looked up in /proc here (`mine`). A scope
/// without its boot id and namespace (written before they were recorded, or read where /proc
/// has neither) proves nothing.
fn same_scope(theirs: &str, mine: &str) -> bool {
    theirs == mine && mine.contains(" boot=") && mine.contains(" pidns=")
}

/// `HOSTNAME boot=BOOT_ID pidns=INODE`: what makes a pid mean one process.
fn scope() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .ok();
    let pidns = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let mut scope = hostname();
    if let (Some(boot), Some(pidns)) = (boot, pidns) {
        // `pid:[4026531836]` -> `4026531836`
        let inode = pidns.trim_start_matches("pid:[").trim_end_matches(']');
        scope.push_str(&format!(" boot={boot} pidns={inode}"));
    }
    scope
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot.
/// `None` when there is no such process (or no /proc). A zombie (killed, not yet reaped by
/// its parent) counts as gone.
fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_missing_pid_is_dead() {
        let me = current_owner();
        assert!(!owner_is_dead(&me));
        if cfg!(target_os = "linux") {
            assert_ne!(me.start_ticks, 0);
            let gone = Owner {
                pid: u32::MAX - 7,
                ..me.clone()
            };
            assert!(owner_is_dead(&gone));
            let reused = Owner {
                start_ticks: me.start_ticks + 1,
                ..me.clone()
            };
            assert!(owner_is_dead(&reused));
            let elsewhere = Owner {
                host: "another-host".into(),
                pid: u32::MAX - 7,
                ..me.clone()
            };
            assert!(!owner_is_dead(&elsewhere));
            // Same hostname, another PID namespace (a container sharing the host's network):
            // its pids are not ours to look up.
            let hostname = me.host.split(' ').next().unwrap().to_string();
            for host in [
                format!("{hostname} boot={} pidns=1", boot_of(&me.host)),
                format!("{hostname} boot=another pidns={}", pidns_of(&me.host)),
                hostname.clone(),
            ] {
                let neighbour = Owner {
                    host,
                    pid: u32::MAX - 7,
                    ..me.clone()
                };
                assert!(!owner_is_dead(&neighbour), "{}", neighbour.host);
            }
        }
    }

    fn boot_of(scope: &str) -> &str {
        scope
            .split(" boot=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
    }

    fn pidns_of(scope: &str) -> &str {
        scope.split(" pidns=").nth(1).unwrap()
    }

    #[test]
    fn the_scope_names_the_boot_and_the_pid_namespace() {
        if cfg!(target_os = "linux") {
            let scope = current_owner().host;
            assert!(
                scope.contains(" boot=") && scope.contains(" pidns="),
                "{scope}"
            );
            assert!(pidns_of(&scope).parse::<u64>().is_ok(), "{scope}");
        }
    }
}
