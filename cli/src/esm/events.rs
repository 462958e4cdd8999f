//! The JSON records Lambda hands a function (LAMBDA-SEMANTICS.md sections 3
//! and 4), built from what the SQS and DynamoDB Streams APIs return.

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record};
use aws_sdk_sqs::types::Message;
use aws_smithy_types::base64;
use serde_json::{json, Map, Value};

use crate::ops::message::attributes_to_json;

/// An SQS message as a record of a Lambda SQS event.
pub(crate) fn sqs_record(msg: &Message, queue_arn: &str, region: &str) -> Value {
    let mut attributes = Map::new();
    if let Some(attrs) = msg.attributes() {
        let mut sorted: Vec<_> = attrs.iter().collect();
        sorted.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (k, v) in sorted {
            attributes.insert(k.as_str().to_owned(), Value::String(v.clone()));
        }
    }
    // The shape Lambda uses (`stringValue`, `dataType`, ...), the same one
    // the operator tool writes and reads.
    let message_attributes = msg.message_attributes().map_or_else(|| Value::Object(Map::new()), attributes_to_json);
    json!({
        "messageId": msg.message_id().unwrap_or_default(),
        "receiptHandle": msg.receipt_handle().unwrap_or_default(),
        "body": msg.body().unwrap_or_default(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": msg.md5_of_body().unwrap_or_default(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    })
}

/// A DynamoDB attribute value in its JSON form (`{"S": ...}`, `{"N": "1"}`,
/// binary as base64).
pub(crate) fn attribute_value(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": base64::encode(b.as_ref()) }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(|b| base64::encode(b.as_ref())).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item(m) }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attribute_value).collect::<Vec<_>>() }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        _ => Value::Null,
    }
}

fn item(m: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(m.iter().map(|(k, v)| (k.clone(), attribute_value(v))).collect())
}

/// A stream record as a record of a Lambda DynamoDB event.
/// `ApproximateCreationDateTime` is epoch seconds (a number), as Lambda
/// sends it; `userIdentity` only when the stream has one (TTL deletes).
pub(crate) fn stream_record(rec: &Record, stream_arn: &str, region: &str) -> Value {
    let mut dynamodb = Map::new();
    if let Some(d) = rec.dynamodb() {
        if let Some(t) = d.approximate_creation_date_time() {
            dynamodb.insert("ApproximateCreationDateTime".into(), Value::from(t.secs()));
        }
        if let Some(k) = d.keys() {
            dynamodb.insert("Keys".into(), item(k));
        }
        if let Some(n) = d.new_image() {
            dynamodb.insert("NewImage".into(), item(n));
        }
        if let Some(o) = d.old_image() {
            dynamodb.insert("OldImage".into(), item(o));
        }
        if let Some(s) = d.sequence_number() {
            dynamodb.insert("SequenceNumber".into(), Value::String(s.to_owned()));
        }
        if let Some(s) = d.size_bytes() {
            dynamodb.insert("SizeBytes".into(), Value::from(s));
        }
        if let Some(v) = d.stream_view_type() {
            dynamodb.insert("StreamViewType".into(), Value::String(v.as_str().to_owned()));
        }
    }
    let mut out = Map::new();
    out.insert("eventID".into(), Value::String(rec.event_id().unwrap_or_default().to_owned()));
    out.insert("eventName".into(), Value::String(rec.event_name().map(|n| n.as_str().to_owned()).unwrap_or_default()));
    out.insert("eventVersion".into(), Value::String(rec.event_version().unwrap_or("1.1").to_owned()));
    out.insert("eventSource".into(), Value::String(rec.event_source().unwrap_or("aws:dynamodb").to_owned()));
    out.insert("awsRegion".into(), Value::String(rec.aws_region().unwrap_or(region).to_owned()));
    out.insert("eventSourceARN".into(), Value::String(stream_arn.to_owned()));
    out.insert("dynamodb".into(), Value::Object(dynamodb));
    if let Some(id) = rec.user_identity() {
        out.insert(
            "userIdentity".into(),
            json!({"type": id.r#type().unwrap_or_default(), "principalId": id.principal_id().unwrap_or_default()}),
        );
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::{Identity, OperationType, StreamRecord, StreamViewType};
    use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
    use aws_smithy_types::{Blob, DateTime};

    #[test]
    fn sqs_record_shape() {
        let msg = Message::builder()
            .message_id("m1")
            .receipt_handle("rh")
            .body("{}")
            .md5_of_body("md5")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .attributes(MessageSystemAttributeName::MessageGroupId, "g")
            .message_attributes(
                "k",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("v")
                    .build()
                    .unwrap_or_else(|_| unreachable!()),
            )
            .message_attributes(
                "b",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(Blob::new(b"xy".to_vec()))
                    .build()
                    .unwrap_or_else(|_| unreachable!()),
            )
            .build();
        let v = sqs_record(&msg, "arn:q", "us-east-1");
        assert_eq!(
            v,
            json!({"messageId": "m1", "receiptHandle": "rh", "body": "{}",
                   "attributes": {"ApproximateReceiveCount": "2", "MessageGroupId": "g"},
                   "messageAttributes": {
                       "k": {"stringValue": "v", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
                       "b": {"binaryValue": "eHk=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"}},
                   "md5OfBody": "md5", "eventSource": "aws:sqs", "eventSourceARN": "arn:q", "awsRegion": "us-east-1"})
        );
    }

    #[test]
    fn stream_record_shape() {
        let rec = Record::builder()
            .event_id("e1")
            .event_name(OperationType::Remove)
            .event_version("1.0")
            .event_source("aws:dynamodb")
            .aws_region("us-east-1")
            .user_identity(Identity::builder().r#type("Service").principal_id("dynamodb.amazonaws.com").build())
            .dynamodb(
                StreamRecord::builder()
                    .approximate_creation_date_time(DateTime::from_secs_f64(1_700_000_000.7))
                    .keys("pk", AttributeValue::S("a".into()))
                    .old_image("pk", AttributeValue::S("a".into()))
                    .old_image("n", AttributeValue::N("1.5".into()))
                    .old_image("bin", AttributeValue::B(Blob::new(b"xy".to_vec())))
                    .old_image("l", AttributeValue::L(vec![AttributeValue::Null(true), AttributeValue::Bool(false)]))
                    .sequence_number("111")
                    .size_bytes(26)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build(),
            )
            .build();
        let v = stream_record(&rec, "arn:s", "eu-west-1");
        assert_eq!(
            v,
            json!({"eventID": "e1", "eventName": "REMOVE", "eventVersion": "1.0", "eventSource": "aws:dynamodb",
                   "awsRegion": "us-east-1", "eventSourceARN": "arn:s",
                   "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
                   "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000, "Keys": {"pk": {"S": "a"}},
                       "OldImage": {"pk": {"S": "a"}, "n": {"N": "1.5"}, "bin": {"B": "eHk="},
                                    "l": {"L": [{"NULL": true}, {"BOOL": false}]}},
                       "SequenceNumber": "111", "SizeBytes": 26, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
        );
    }
}
