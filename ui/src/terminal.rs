//! Taking over the terminal and always giving it back.
//!
//! A TUI that exits through an error or a panic without leaving raw mode and the alternate screen
//! leaves the operator's shell unusable (no echo, no line editing), which over SSH at 3 a.m. is the
//! worst moment to learn `reset`. So [`restore`] undoes every step even if one fails, is safe to call
//! any number of times, and [`install_panic_hook`] calls it before the panic message prints so the
//! message lands on the normal screen where it can be read. ratatui's own `init`/`restore` do not show
//! the cursor again and install their hook on every call, hence this small module.

use std::{
    io::{self, Stdout, Write, stdout},
    sync::{
        Once,
        atomic::{AtomicBool, Ordering},
    },
};

use ratatui::{
    Terminal,
    backend::CrosstermBackend,
    crossterm::{
        cursor::{Hide, Show},
        execute,
        terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
    },
};

/// The terminal type the console draws on.
pub type ConsoleTerminal = Terminal<CrosstermBackend<Stdout>>;

/// Whether [`enter`] has changed the terminal and [`restore`] has not yet undone it.
static ENTERED: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// A step of taking over or giving back the terminal failed.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("cannot {step} (is standard output a terminal? use the headless mode otherwise): {source}")]
    Enter { step: &'static str, source: io::Error },
    #[error("cannot {step}; run `reset` if the shell does not echo: {source}")]
    Restore { step: &'static str, source: io::Error },
}

/// Switches to the alternate screen, raw mode and a hidden cursor, and installs the panic hook.
/// On failure the terminal is restored before the error is returned.
pub fn enter() -> Result<ConsoleTerminal, TerminalError> {
    install_panic_hook();
    ENTERED.store(true, Ordering::SeqCst);
    let result = enter_steps();
    if result.is_err() {
        // Best effort: the error being returned is the one the operator needs to see.
        let _ = restore();
    }
    result
}

fn enter_steps() -> Result<ConsoleTerminal, TerminalError> {
    enable_raw_mode().map_err(|source| TerminalError::Enter {
        step: "enable raw mode",
        source,
    })?;
    execute!(stdout(), EnterAlternateScreen, Hide).map_err(|source| TerminalError::Enter {
        step: "enter the alternate screen",
        source,
    })?;
    let mut terminal =
        Terminal::new(CrosstermBackend::new(stdout())).map_err(|source| TerminalError::Enter {
            step: "measure the terminal",
            source,
        })?;
    terminal.clear().map_err(|source| TerminalError::Enter {
        step: "clear the screen",
        source,
    })?;
    Ok(terminal)
}

/// Leaves raw mode and the alternate screen and shows the cursor. Every step is attempted even if an
/// earlier one fails; the first failure is returned. Does nothing if the terminal is not entered, so it
/// may be called from a panic hook, a drop guard and the normal exit path alike.
pub fn restore() -> Result<(), TerminalError> {
    if !ENTERED.swap(false, Ordering::SeqCst) {
        return Ok(());
    }
    let raw = disable_raw_mode().map_err(|source| TerminalError::Restore {
        step: "leave raw mode",
        source,
    });
    let mut out = stdout();
    let screen = execute!(out, LeaveAlternateScreen, Show).map_err(|source| TerminalError::Restore {
        step: "leave the alternate screen",
        source,
    });
    let flushed = out.flush().map_err(|source| TerminalError::Restore {
        step: "flush the terminal",
        source,
    });
    raw.and(screen).and(flushed)
}

/// Makes a panic restore the terminal before the previous hook prints the panic message. Installs
/// itself once per process however often it is called.
pub fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Err(error) = restore() {
                eprintln!("perpdesk: {error}");
            }
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_without_enter_is_a_no_op_and_repeatable() {
        // Tests do not own a terminal: restoring must not touch it, however often it is called.
        assert!(restore().is_ok());
        assert!(restore().is_ok());
        assert!(!ENTERED.load(Ordering::SeqCst));
    }

    #[test]
    fn panic_hook_installs_once_and_keeps_panics_catchable() {
        install_panic_hook();
        install_panic_hook();
        let outcome = std::panic::catch_unwind(|| panic!("boom"));
        assert!(outcome.is_err());
        assert!(
            !ENTERED.load(Ordering::SeqCst),
            "the hook restored (nothing) without entering"
        );
    }
}
