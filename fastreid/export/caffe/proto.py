"""Python message classes for ``caffe.proto``, built at import time (no protoc needed).

A small reader turns the proto2 subset used by ``caffe.proto`` (messages, nested enums,
``optional`` / ``repeated`` scalar, enum and message fields with ``default`` / ``packed``
options) into a ``FileDescriptorProto``; ``google.protobuf`` then builds the classes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..dependencies import require

__all__ = ["caffe_pb2", "load_messages"]

_PROTO_FILE = Path(__file__).with_name("caffe.proto")

_SCALAR_TYPES = {
    "double": 1,
    "float": 2,
    "int64": 3,
    "uint64": 4,
    "int32": 5,
    "bool": 8,
    "string": 9,
    "bytes": 12,
    "uint32": 13,
}
_LABELS = {"optional": 1, "required": 2, "repeated": 3}
_TOKEN = re.compile(r'"[^"]*"|[A-Za-z_][\w.]*|-?\d[\w.+-]*|[{}\[\]=;,]')


def _tokens(text: str) -> list[str]:
    text = re.sub(r"//[^\n]*", "", text)
    return _TOKEN.findall(text)


class _Reader:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str:
        return self.tokens[self.pos]

    def take(self, expected: str | None = None) -> str:
        token = self.tokens[self.pos]
        if expected is not None and token != expected:
            raise ValueError(f"caffe.proto: expected '{expected}', found '{token}'.")
        self.pos += 1
        return token

    def done(self) -> bool:
        return self.pos >= len(self.tokens)


def _parse_enum(reader: _Reader, enum_proto: Any) -> None:
    enum_proto.name = reader.take()
    reader.take("{")
    while reader.peek() != "}":
        value = enum_proto.value.add()
        value.name = reader.take()
        reader.take("=")
        value.number = int(reader.take())
        reader.take(";")
    reader.take("}")


def _parse_message(reader: _Reader, message: Any, enums: set[str]) -> None:
    message.name = reader.take()
    reader.take("{")
    while reader.peek() != "}":
        keyword = reader.take()
        if keyword == "enum":
            _parse_enum(reader, message.enum_type.add())
            enums.add(message.enum_type[-1].name)
            continue
        field = message.field.add()
        field.label = _LABELS[keyword]
        type_name = reader.take()
        field.name = reader.take()
        reader.take("=")
        field.number = int(reader.take())
        if type_name in _SCALAR_TYPES:
            field.type = _SCALAR_TYPES[type_name]
        else:
            field.type_name = type_name  # resolved below (enum or message)
        if reader.peek() == "[":
            reader.take("[")
            while True:
                option = reader.take()
                reader.take("=")
                value = reader.take()
                if option == "default":
                    field.default_value = value.strip('"')
                elif option == "packed":
                    field.options.packed = value == "true"
                if reader.take() == "]":
                    break
        reader.take(";")
    reader.take("}")


def _file_descriptor(text: str):
    descriptor_pb2 = require("google.protobuf.descriptor_pb2", "Caffe export")
    reader = _Reader(_tokens(text))
    proto = descriptor_pb2.FileDescriptorProto(name="fastreid_caffe.proto", syntax="proto2")
    enums: set[str] = set()
    while not reader.done():
        keyword = reader.take()
        if keyword == "syntax":
            reader.take("=")
            reader.take()
            reader.take(";")
        elif keyword == "package":
            proto.package = reader.take()
            reader.take(";")
        elif keyword == "message":
            _parse_message(reader, proto.message_type.add(), enums)
        else:
            raise ValueError(f"caffe.proto: unexpected '{keyword}'.")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                if field.type_name in enums:
                    field.type = 14  # TYPE_ENUM, nested in this message
                    field.type_name = f".{proto.package}.{message.name}.{field.type_name}"
                else:
                    field.type = 11  # TYPE_MESSAGE
                    field.type_name = f".{proto.package}.{field.type_name}"
    return proto


class _Messages:
    """Namespace of generated message classes (``caffe_pb2.NetParameter``, ...)."""


def load_messages() -> _Messages:
    """Build the Caffe message classes from ``caffe.proto``."""
    require("google.protobuf", "Caffe export")
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    file_proto = _file_descriptor(_PROTO_FILE.read_text())
    pool.Add(file_proto)
    file_descriptor = pool.FindFileByName(file_proto.name)
    namespace = _Messages()
    for name in file_descriptor.message_types_by_name:
        descriptor = file_descriptor.message_types_by_name[name]
        setattr(namespace, name, message_factory.GetMessageClass(descriptor))
    return namespace


_CACHE: dict[str, _Messages] = {}


def caffe_pb2() -> _Messages:
    """The (cached) Caffe message classes."""
    if "messages" not in _CACHE:
        _CACHE["messages"] = load_messages()
    return _CACHE["messages"]
