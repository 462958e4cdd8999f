//! Integration tests against the local AWS stack.
