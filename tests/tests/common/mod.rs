//! Fault injection for the end-to-end tests: wrappers that fail or panic on
//! a deterministic fraction of calls, and count the effects that do land.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use pipeline_core::{BoxError, EntryFailure, Item, OutgoingMessage, RemovalAudit, SqsTransport};
use queue_processor::{ItemStore, StoreError, WriteOutcome};

/// A deterministic stream of fractions in [0, 1) (splitmix64).
#[derive(Debug)]
pub struct Dice(AtomicU64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(AtomicU64::new(seed))
    }

    pub fn roll(&self) -> f64 {
        let mut z = self.0.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An [`ItemStore`] that fails `fail` and panics on `panic` of its calls,
/// and counts the writes that succeed, per item.
pub struct FlakyStore<S> {
    pub inner: S,
    pub fail: f64,
    pub panic: f64,
    pub dice: Dice,
    pub writes: Mutex<HashMap<String, u32>>,
    pub injected: AtomicU64,
}

impl<S> FlakyStore<S> {
    pub fn new(inner: S, fail: f64, panic: f64, seed: u64) -> Self {
        Self { inner, fail, panic, dice: Dice::new(seed), writes: Mutex::default(), injected: AtomicU64::new(0) }
    }

    fn chaos(&self, what: &str) -> Result<(), StoreError> {
        let r = self.dice.roll();
        if r < self.panic {
            self.injected.fetch_add(1, Ordering::SeqCst);
            panic!("injected panic in {what}");
        }
        if r < self.panic + self.fail {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError(format!("{what}: injected ProvisionedThroughputExceededException")));
        }
        Ok(())
    }

    pub fn writes_of(&self, id: &str) -> u32 {
        self.writes.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

impl<S: ItemStore> ItemStore for FlakyStore<S> {
    async fn get(&self, id: &str) -> Result<Option<Item>, StoreError> {
        self.chaos("GetItem")?;
        self.inner.get(id).await
    }

    async fn put_if_version(&self, item: &Item, expected_version: u64) -> Result<WriteOutcome, StoreError> {
        self.chaos("PutItem")?;
        let result = self.inner.put_if_version(item, expected_version).await?;
        if result == WriteOutcome::Written {
            *self.writes.lock().unwrap().entry(item.id().to_owned()).or_default() += 1;
        }
        // A write that landed but whose answer is lost: the job is retried
        // and must find the item already moved on.
        self.chaos("PutItem response")?;
        Ok(result)
    }

    async fn put_audit(&self, audit: &RemovalAudit) -> Result<WriteOutcome, StoreError> {
        self.chaos("PutItem audit")?;
        self.inner.put_audit(audit).await
    }
}

/// An [`SqsTransport`] whose calls fail `fail` of the time.
pub struct FlakyQueue<Q> {
    pub inner: Q,
    pub fail: f64,
    pub dice: Dice,
}

impl<Q: SqsTransport> SqsTransport for FlakyQueue<Q> {
    async fn send_batch(&self, entries: &[OutgoingMessage]) -> Result<Vec<Result<(), EntryFailure>>, BoxError> {
        if self.dice.roll() < self.fail {
            return Err("SendMessageBatch: injected network error".into());
        }
        self.inner.send_batch(entries).await
    }
}
