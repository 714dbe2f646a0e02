//! `akvvm validate`.
