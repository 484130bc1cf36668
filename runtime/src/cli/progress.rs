//! Progress of long operations on stderr (bulk enqueue, purge, redrive):
//! count, rate and, when the total is known, time left. Drawn only when
//! stderr is a terminal, so scripts and logs see nothing but the final
//! summary the command prints.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress display, or nothing when stderr is not a terminal.
pub(super) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A counter without a known total (`what`: "events enqueued"). It
    /// appears at the first advance, so an instant operation prints nothing.
    pub(super) fn counter(what: &str) -> Self {
        Self::styled(None, &format!("{{spinner}} {{pos}} {what} ({{per_sec}})"))
    }

    /// A bar towards `total` (`what`: "dead letters redriven"), with the
    /// rate and the time left.
    pub(super) fn bar(total: u64, what: &str) -> Self {
        Self::styled(
            Some(total),
            &format!("{{bar:30}} {{pos}}/{{len}} {what} ({{per_sec}}, {{eta}} left)"),
        )
    }

    fn styled(total: Option<u64>, template: &str) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::hidden();
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        Self(Some(bar))
    }

    /// Shows `done` so far.
    pub(super) fn set(&self, done: usize) {
        if let Some(bar) = &self.0 {
            if bar.is_hidden() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            bar.set_position(u64::try_from(done).unwrap_or(u64::MAX));
        }
    }

    /// Removes the display; the command prints its own summary.
    pub(super) fn finish(&self, done: usize) {
        if let Some(bar) = &self.0 {
            bar.set_position(u64::try_from(done).unwrap_or(u64::MAX));
            bar.finish_and_clear();
        }
    }
}
