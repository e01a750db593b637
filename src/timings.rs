//! Phase timings for profiling: built with `--features phase-timings`, every
//! [`mark`] prints the time since [`start`] and the peak RSS so far to
//! stderr; otherwise both are
//! empty and compile away. See bench/README.md.

#[cfg(feature = "phase-timings")]
static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Starts the clock (the beginning of `run`).
#[inline]
pub fn start() {
    #[cfg(feature = "phase-timings")]
    START.get_or_init(std::time::Instant::now);
}

/// Marks the end of a phase.
#[inline]
pub fn mark(_phase: &str) {
    #[cfg(feature = "phase-timings")]
    {
        let t = START.get_or_init(std::time::Instant::now).elapsed();
        // The peak resident size so far (VmHWM), for memory budgets.
        let hwm = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l[6..].trim().to_string()))
            .unwrap_or_default();
        eprintln!("phase {:>8.2} ms  {_phase}  (peak RSS {hwm})", t.as_secs_f64() * 1e3);
    }
}
