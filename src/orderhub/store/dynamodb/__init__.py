"""The DynamoDB store: one table per `dynamodb://PREFIX`, aioboto3, no Scan."""
