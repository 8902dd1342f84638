//! Who runs a trial: host, pid and the process's start time, so that a later process can tell
//! whether a "running" trial's worker still exists.

use super::trial::Owner;

/// This process.
pub fn current_owner() -> Owner {
    let pid = std::process::id();
    Owner {
        host: hostname(),
        pid,
        start_ticks: process_start_ticks(pid).unwrap_or(0),
    }
}

/// True only when we can be sure: same host, and no process with that pid and start time.
/// Owners on other hosts are judged by their heartbeats instead.
pub fn owner_is_dead(owner: &Owner) -> bool {
    if owner.host != hostname() || !cfg!(target_os = "linux") {
        return false;
    }
    match process_start_ticks(owner.pid) {
        None => true,
        Some(ticks) => owner.start_ticks != 0 && ticks != owner.start_ticks,
    }
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
                ..me
            };
            assert!(!owner_is_dead(&elsewhere));
        }
    }
}
