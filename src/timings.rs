//! Phase timings for profiling: built with `--features phase-timings`, every
//! [`mark`] prints the time since [`start`] to stderr; otherwise both are
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
        eprintln!("phase {:>8.2} ms  {_phase}", t.as_secs_f64() * 1e3);
    }
}
