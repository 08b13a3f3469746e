"""The Avro schemas: the contracts between every part of edml, installed as edml.schemas."""
