//! Property tests: for any pattern of handler outcomes, the response holds
//! exactly the records Lambda must deliver again, and never an identifier
//! that is not in the batch.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::*;
use pipeline_core::{BatchConfig, BatchProcessor, BatchReport, Deadline, MemorySink, Message, StreamRecord};
use proptest::prelude::*;

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![6 => Just(Act::Ok), 2 => Just(Act::Retry), 1 => Just(Act::Permanent), 1 => Just(Act::Panic)]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap()
}

fn engine(concurrency: usize) -> BatchProcessor<MemorySink> {
    BatchProcessor::new(info(), MemorySink::new()).with_config(BatchConfig::default().max_concurrency(concurrency))
}

/// A batch: each record's act and its group (0..groups).
fn batch() -> impl Strategy<Value = Vec<(Act, u8)>> {
    proptest::collection::vec((act(), 0u8..4), 0..40)
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

fn assert_no_foreign(report: &BatchReport, ids: &[String]) {
    let known: HashSet<&String> = ids.iter().collect();
    for id in &report.item_failures {
        assert!(!id.is_empty() && known.contains(id), "foreign identifier {id:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn standard_queue_reports_exactly_the_failed_messages(batch in batch(), concurrency in 1usize..8) {
        let ids = ids(batch.len());
        let script = Script::new(&ids.iter().zip(&batch).map(|(id, (a, _))| (id.as_str(), *a)).collect::<Vec<_>>());
        let records: Vec<(&str, Option<&str>)> = ids.iter().map(|id| (id.as_str(), None)).collect();
        let engine = engine(concurrency);
        let report = runtime().block_on(engine.run_sqs(sqs_event(&records, QUEUE_ARN), Deadline::none(), |m: Message<N>| script.act_on(m))).unwrap();
        let expected: Vec<String> = ids.iter().zip(&batch).filter(|(_, (a, _))| a.fails()).map(|(id, _)| id.clone()).collect();
        let mut got = report.item_failures.clone();
        got.sort();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        prop_assert_eq!(got, expected_sorted);
        prop_assert_eq!(engine.sink().letters().len(), batch.iter().filter(|(a, _)| *a == Act::Permanent).count());
        assert_no_foreign(&report, &ids);
    }

    #[test]
    fn fifo_reports_each_groups_first_failure_and_everything_after_it(batch in batch(), concurrency in 1usize..8) {
        let ids = ids(batch.len());
        let groups: Vec<String> = batch.iter().map(|(_, g)| format!("g{g}")).collect();
        let script = Script::new(&ids.iter().zip(&batch).map(|(id, (a, _))| (id.as_str(), *a)).collect::<Vec<_>>());
        let records: Vec<(&str, Option<&str>)> = ids.iter().zip(&groups).map(|(id, g)| (id.as_str(), Some(g.as_str()))).collect();
        let report = runtime().block_on(engine(concurrency).run_sqs(sqs_event(&records, FIFO_ARN), Deadline::none(), |m: Message<N>| script.act_on(m))).unwrap();
        let mut failed_groups = HashSet::new();
        let mut expected = Vec::new();
        for (i, (a, g)) in batch.iter().enumerate() {
            if failed_groups.contains(g) || a.fails() {
                failed_groups.insert(*g);
                expected.push(ids[i].clone());
            }
        }
        let mut got = report.item_failures.clone();
        got.sort();
        expected.sort();
        prop_assert_eq!(&got, &expected);
        // Nothing after a group's failure ran.
        let ran: HashSet<String> = script.ran().into_iter().collect();
        let mut seen_failure = HashSet::new();
        for (i, (a, g)) in batch.iter().enumerate() {
            if seen_failure.contains(g) {
                prop_assert!(!ran.contains(&ids[i]), "{} ran after its group failed", ids[i]);
            }
            if a.fails() { seen_failure.insert(*g); }
        }
        assert_no_foreign(&report, &ids);
    }

    #[test]
    fn stream_reports_only_the_lowest_failure(batch in batch(), concurrency in 1usize..8) {
        let seqs: Vec<u64> = (0..batch.len() as u64).map(|i| 1000 + i * 7).collect();
        let keys: Vec<String> = batch.iter().map(|(_, g)| format!("k{g}")).collect();
        let script = Script::new(&seqs.iter().zip(&batch).map(|(s, (a, _))| (s.to_string(), *a)).collect::<Vec<_>>().iter().map(|(s, a)| (s.as_str(), *a)).collect::<Vec<_>>());
        let records: Vec<(u64, &str)> = seqs.iter().zip(&keys).map(|(s, k)| (*s, k.as_str())).collect();
        let report = runtime().block_on(engine(concurrency).run_stream(stream_event(&records), Deadline::none(), |r: StreamRecord<N>| script.act_on_stream(r))).unwrap();
        let expected: Vec<String> = batch.iter().position(|(a, _)| a.fails()).map(|i| seqs[i].to_string()).into_iter().collect();
        prop_assert_eq!(&report.item_failures, &expected);
        // Records of a failed key after its failure never ran.
        let ran: HashSet<String> = script.ran().into_iter().collect();
        if let Some(first) = batch.iter().position(|(a, _)| a.fails()) {
            for (i, (_, g)) in batch.iter().enumerate().skip(first + 1) {
                if *g == batch[first].1 {
                    prop_assert!(!ran.contains(&seqs[i].to_string()));
                }
            }
        }
        let seq_ids: Vec<String> = seqs.iter().map(u64::to_string).collect();
        assert_no_foreign(&report, &seq_ids);
    }
}
