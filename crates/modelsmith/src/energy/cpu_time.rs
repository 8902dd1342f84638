//! CPU time from Linux's `/proc`: this process's, a set of its threads' (the rayon pool a trial
//! trains on, when trials run side by side in one process), and the whole machine's busy time
//! (to give this work its share of a machine-wide RAPL reading).

/// Clock ticks per second of `/proc`'s `utime`/`stime` and `/proc/stat`: Linux's `USER_HZ`,
/// 100 on every architecture's user-space ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// Whose CPU time a meter counts.
#[derive(Clone, Debug)]
pub enum CpuClock {
    /// Every thread of this process (`train`, a worker running one trial at a time).
    Process,
    /// These threads of this process (Linux thread ids): the rayon pool a trial runs on.
    Threads(Vec<u32>),
}

impl CpuClock {
    /// The threads of the rayon pool the caller runs in, plus the caller: where a trial that
    /// started here spends its CPU time.
    pub fn current_pool() -> CpuClock {
        let mut ids: Vec<u32> = rayon::broadcast(|_| thread_id());
        ids.push(thread_id());
        ids.retain(|&id| id != 0);
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            CpuClock::Process
        } else {
            CpuClock::Threads(ids)
        }
    }

    /// CPU seconds (user + system) used so far; 0 where `/proc` is not there.
    pub fn seconds(&self) -> f64 {
        match self {
            CpuClock::Process => process_seconds(),
            CpuClock::Threads(ids) => ids.iter().map(|&id| thread_seconds(id)).sum(),
        }
    }
}

/// This process's CPU seconds, all threads.
pub fn process_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| user_plus_system(&s))
        .unwrap_or(0.0)
}

/// One thread's CPU seconds: nanoseconds from `schedstat` where the kernel has it, else ticks.
fn thread_seconds(id: u32) -> f64 {
    let dir = format!("/proc/self/task/{id}");
    if let Some(ns) = std::fs::read_to_string(format!("{dir}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
    {
        return ns as f64 * 1e-9;
    }
    std::fs::read_to_string(format!("{dir}/stat"))
        .ok()
        .and_then(|s| user_plus_system(&s))
        .unwrap_or(0.0)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/.../stat` line, in seconds. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after its `)`.
fn user_plus_system(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// The calling thread's Linux id (`/proc/thread-self` links to `PID/task/TID`); 0 elsewhere.
fn thread_id() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

/// Seconds every CPU of the machine spent busy (user, nice, system, irq, softirq; not idle,
/// iowait or steal), from `/proc/stat`'s first line.
pub fn machine_busy_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| busy_of(s.lines().next()?))
        .unwrap_or(0.0)
}

fn busy_of(cpu_line: &str) -> Option<f64> {
    let v: Vec<f64> = cpu_line
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)?;
    Some(busy / TICKS_PER_SECOND)
}

/// This process's resident memory in bytes (`VmRSS`), 0 where unknown.
pub fn resident_bytes() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024.0)
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines() {
        let line = "4242 (my (odd) name) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0";
        assert_eq!(user_plus_system(line), Some(3.0));
        assert_eq!(user_plus_system("garbage"), None);
        assert_eq!(busy_of("cpu  100 10 40 9000 30 5 5 7 0 0"), Some(1.6));
        assert_eq!(busy_of("intr 1 2 3"), None);
    }

    #[test]
    fn counts_work_done() {
        let clocks = [CpuClock::Process, CpuClock::current_pool()];
        let before: Vec<f64> = clocks.iter().map(|c| c.seconds()).collect();
        let busy_before = machine_busy_seconds();
        // About 0.3 s of arithmetic on this thread.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_secs_f64() < 0.3 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert_ne!(x, 42);
        let used: Vec<f64> = clocks
            .iter()
            .zip(before)
            .map(|(c, b)| c.seconds() - b)
            .collect();
        // The process also counts the other tests running beside this one.
        assert!(used[0] >= 0.15, "process: {} s", used[0]);
        assert!(
            (0.15..1.0).contains(&used[1]),
            "this thread and its pool: {} s",
            used[1]
        );
        assert!(machine_busy_seconds() - busy_before >= 0.15);
        assert!(resident_bytes() > 1e6);
    }
}
