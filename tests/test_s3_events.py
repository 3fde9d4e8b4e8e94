"""S3 notifications, as moto's real S3 server delivers them to its SQS, name exactly the created objects."""

from __future__ import annotations

import json

import boto3

from airflow_provider_brain.s3_events import s3_uris_from_asset_events, s3_uris_from_notification


def test_created_objects_from_real_s3_notifications(s3_server, s3_bucket):
    sqs = boto3.client(
        "sqs",
        endpoint_url=s3_server.endpoint_url,
        region_name=s3_server.region,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
    )
    queue_url = sqs.create_queue(QueueName=f"{s3_bucket}-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3 = s3_server.client()
    s3.put_bucket_notification_configuration(
        Bucket=s3_bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    s3.put_object(Bucket=s3_bucket, Key="incoming/call one.wav", Body=b"RIFF")
    s3.put_object(Bucket=s3_bucket, Key="incoming/call-2.mp3", Body=b"ID3")
    s3.delete_object(Bucket=s3_bucket, Key="incoming/call-2.mp3")

    messages = []
    for _ in range(5):
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        messages += batch
        if len(messages) >= 3:
            break
    uris = [uri for m in messages for uri in s3_uris_from_notification(m["Body"])]
    assert uris == [f"s3://{s3_bucket}/incoming/call one.wav", f"s3://{s3_bucket}/incoming/call-2.mp3"]

    # As an SQS AssetWatcher hands them to the DAG run: asset events whose extra holds the message batch.
    event = {"extra": {"from_trigger": True, "payload": {"status": "success", "message_batch": messages}}}
    assert s3_uris_from_asset_events([event, event]) == uris


def test_test_events_and_sns_envelopes():
    assert s3_uris_from_notification('{"Event": "s3:TestEvent", "Bucket": "b"}') == []
    record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "a+b.wav"}}}
    inner = json.dumps({"Records": [record]})
    assert s3_uris_from_notification({"Type": "Notification", "Message": inner}) == ["s3://b/a b.wav"]
