//! Trading sessions and kill zones: whether a bar falls in a session, and the session's running high and
//! low.
//!
//! ICT setups are timed by session (London open, the New York kill zone…). Windows are in UTC, compared
//! at minute resolution on the bar's open time, end inclusive, wrapping midnight when start >= end; the
//! extremes run over consecutive in-session bars and reset on the first bar outside (a data gap does not
//! reset them). That is the reference's rule (SPEC §2.8) and this family matches it exactly. Everything
//! is known at the bar itself.

use super::{BarIndex, SmcError, SmcEvent, SmcEventKind};
use crate::domain::Bar;

/// A named session window (UTC), or a custom one in minutes after midnight UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Session {
    Sydney,
    Tokyo,
    London,
    NewYork,
    AsianKillZone,
    LondonOpenKillZone,
    NewYorkKillZone,
    LondonCloseKillZone,
    Custom { start_minute: u16, end_minute: u16 },
}

impl Session {
    /// `(start, end)` in minutes after midnight UTC, both inclusive.
    pub fn window(self) -> (u16, u16) {
        const H: u16 = 60;
        match self {
            Self::Sydney => (21 * H, 6 * H),
            Self::Tokyo => (0, 9 * H),
            Self::London => (7 * H, 16 * H),
            Self::NewYork => (13 * H, 22 * H),
            Self::AsianKillZone => (0, 4 * H),
            Self::LondonOpenKillZone => (6 * H, 9 * H),
            Self::NewYorkKillZone => (11 * H, 14 * H),
            Self::LondonCloseKillZone => (14 * H, 16 * H),
            Self::Custom {
                start_minute,
                end_minute,
            } => (start_minute, end_minute),
        }
    }

    /// Whether a bar opening at `minute_of_day` (UTC) is in the session.
    pub fn contains(self, minute_of_day: u16) -> bool {
        let (start, end) = self.window();
        if start < end {
            start <= minute_of_day && minute_of_day <= end
        } else {
            minute_of_day >= start || minute_of_day <= end
        }
    }
}

/// Tracks one session.
#[derive(Debug, Clone)]
pub struct SessionTracker {
    session: Session,
    running: Option<(f64, f64)>,
}

impl SessionTracker {
    pub fn new(session: Session) -> Result<Self, SmcError> {
        let (start, end) = session.window();
        if start >= 1440 || end >= 1440 {
            return Err(SmcError::SessionWindow { start, end });
        }
        Ok(Self {
            session,
            running: None,
        })
    }

    pub fn session(&self) -> Session {
        self.session
    }

    pub fn on_bar(&mut self, index: BarIndex, bar: &Bar, out: &mut Vec<SmcEvent>) {
        let minute_of_day = bar.open_time.div_euclid(60_000).rem_euclid(1440) as u16;
        if !self.session.contains(minute_of_day) {
            self.running = None;
            return;
        }
        let (high, low) = match self.running {
            Some((high, low)) => (high.max(bar.high), low.min(bar.low)),
            None => (bar.high, bar.low),
        };
        self.running = Some((high, low));
        out.push(SmcEvent {
            row: index,
            known_at: index,
            kind: SmcEventKind::SessionBar {
                session: self.session,
                high,
                low,
            },
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn windows_are_end_inclusive_and_wrap_midnight() {
        assert!(Session::London.contains(16 * 60));
        assert!(!Session::London.contains(16 * 60 + 1));
        assert!(Session::Sydney.contains(23 * 60));
        assert!(Session::Sydney.contains(6 * 60));
        assert!(!Session::Sydney.contains(12 * 60));
    }

    #[test]
    fn custom_window_out_of_day_is_rejected() {
        let session = Session::Custom {
            start_minute: 0,
            end_minute: 1440,
        };
        assert_eq!(
            SessionTracker::new(session).err(),
            Some(SmcError::SessionWindow { start: 0, end: 1440 })
        );
    }
}
