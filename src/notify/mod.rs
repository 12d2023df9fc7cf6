//! Discord notifications (placeholder line replaced below).
