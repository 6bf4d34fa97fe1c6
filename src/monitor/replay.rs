//! Playing a recording back (`pi-ring-monitor --replay FILE`): a clock
//! that runs at a chosen speed, can pause and can jump, and the position in
//! the recording it has reached. Entries up to the clock's time are applied
//! to the monitor exactly as the live monitor applied them (same messages,
//! same ticks, at the same times), so the page and the API show at each
//! moment what they showed live.

use super::record::{Entry, Recording};
use std::time::Duration;

/// The fastest a replay plays.
pub const MAX_SPEED: f64 = 1000.0;

/// Where a replay is and how it plays.
#[derive(Debug)]
pub struct Player {
    recording: Recording,
    /// The next entry to apply.
    next: usize,
    /// The recording's time the replay has reached.
    position: Duration,
    playing: bool,
    speed: f64,
    /// Seeks back so far (each starts the monitor afresh).
    pub restarts: u64,
}

/// What the monitor must do to follow the player.
pub enum Step<'a> {
    /// Forget everything and start from the recording's beginning.
    Restart,
    /// Apply this entry.
    Apply(&'a Entry),
}

impl Player {
    pub fn new(recording: Recording) -> Self {
        Player { recording, next: 0, position: Duration::ZERO, playing: true, speed: 1.0, restarts: 0 }
    }

    pub fn recording(&self) -> &Recording {
        &self.recording
    }

    pub fn position(&self) -> Duration {
        self.position
    }

    pub fn duration(&self) -> Duration {
        self.recording.duration()
    }

    pub fn playing(&self) -> bool {
        self.playing
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Play on from where it is (from the start once at the end).
    pub fn play(&mut self) {
        self.playing = true;
    }

    pub fn pause(&mut self) {
        self.playing = false;
    }

    /// Play at `speed` times real time (bounded to 1/100 .. [`MAX_SPEED`]).
    pub fn set_speed(&mut self, speed: f64) {
        if speed.is_finite() {
            self.speed = speed.clamp(0.01, MAX_SPEED);
        }
    }

    /// `elapsed` of real time went by: the position moves on if playing,
    /// and the replay pauses at the end. Calls `step` for what to apply.
    pub fn advance(&mut self, elapsed: Duration, step: impl FnMut(Step<'_>)) {
        if !self.playing {
            return;
        }
        let to = self.position + elapsed.mul_f64(self.speed);
        self.seek(to, step);
        if self.position >= self.duration() {
            self.playing = false;
        }
    }

    /// Jump to `to` (within the recording): forward by applying what lies
    /// between, back by starting again from the beginning.
    pub fn seek(&mut self, to: Duration, mut step: impl FnMut(Step<'_>)) {
        let to = to.min(self.duration());
        if to < self.position {
            step(Step::Restart);
            self.restarts += 1;
            self.next = 0;
        }
        while let Some(entry) = self.recording.entries.get(self.next).filter(|e| e.at() <= to) {
            step(Step::Apply(entry));
            self.next += 1;
        }
        self.position = to;
    }
}
