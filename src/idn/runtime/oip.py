"""The Open Inference Protocol (KServe v2, REST) as an IDN node speaks it.

The protocol's model name is the task: a client asks for ``digits``, and the
IDN chooses which model serves it, by its serving rule. Every model of a task
shares one interface (the ONNX files ``idn models build`` writes): one input
``X`` (FP32, shape ``[1, n_features]``: one request is one row, the unit the
IDN counts and routes) and two outputs, ``label`` (INT64, ``[1]``) and
``probabilities`` (FP32, ``[1, n_classes]``).

Both encodings of the protocol are read and written: JSON tensors (``data``)
and the binary tensor extension (``Inference-Header-Content-Length`` gives
the JSON header's length, the raw little-endian bytes of the tensors follow,
each sized by its ``binary_data_size`` parameter), which ``tritonclient``
uses by default. Anything that does not parse, however deep or odd, is a
:class:`ProtocolError` (a 4xx and a one-line message), never an exception
that escapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

INPUT = "X"
OUTPUTS = ("label", "probabilities")
VERSION = "1"  # one version per task: the IDN, not the client, picks the model behind it
# the numeric datatypes of the protocol (little-endian, row-major); an input is converted to FP32
DTYPES = {
    "BOOL": np.dtype("?"), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}  # fmt: skip
JSON = "application/json"
MAX_OPENERS = 1000  # a request opens about 10; deep nesting crashed orjson < 3.9.15 (CVE-2024-27454)
BINARY = "application/octet-stream"
FP32_MAX = float(np.finfo(np.float32).max)


class ProtocolError(Exception):
    """A request the protocol refuses: HTTP ``status`` and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class InferRequest:
    x: np.ndarray  # (1, n_features) float32, finite
    id: str | None  # the client's request id, echoed in the response
    outputs: tuple[tuple[str, bool], ...]  # (output name, as binary data), in the order asked


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def parse_infer(body: bytes, header_length: str | None, task: str, n_features: int) -> InferRequest:
    """The one input row of an infer request, its id and the outputs it asks for."""
    try:
        return _parse(body, header_length, task, n_features)
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure is still the body's fault: a 400, not a 500
        raise ProtocolError(400, f"malformed inference request: {type(exc).__name__}: {str(exc)[:200]}") from None


def _parse(body: bytes, header_length: str | None, task: str, n_features: int) -> InferRequest:
    binary = b""
    if header_length is not None:
        try:
            h = int(header_length)
        except ValueError:
            h = -1
        if not 0 < h <= len(body):
            raise ProtocolError(400, f"Inference-Header-Content-Length {header_length[:40]!r} is not a length within the body ({len(body)} bytes)")
        body, binary = body[:h], body[h:]
    if body.count(b"[") + body.count(b"{") > MAX_OPENERS:  # a guard for any JSON parser's stack, at C speed
        raise ProtocolError(400, f"the JSON header opens more than {MAX_OPENERS} arrays or objects: nested too deep")
    try:
        doc = orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(400, f"malformed JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise ProtocolError(400, "the inference request must be a JSON object with 'inputs'")
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise ProtocolError(400, "'id' must be a string")
    params = _params(doc, "the request's")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ProtocolError(400, f"'inputs' must be a list of one tensor, {INPUT!r} (model {task!r} has one input)")
    x, used = _tensor(inputs[0], binary, task, n_features)
    if used != len(binary):
        raise ProtocolError(400, f"the binary part is {len(binary)} bytes but the inputs' binary_data_size add up to {used}")
    return InferRequest(x, rid, _outputs(doc.get("outputs"), params, task))


def _params(doc: dict, whose: str) -> dict:
    p = doc.get("parameters", {})
    if not isinstance(p, dict):
        raise ProtocolError(400, f"{whose} 'parameters' must be an object")
    return p


def _tensor(t: dict, binary: bytes, task: str, n: int) -> tuple[np.ndarray, int]:
    if t.get("name") != INPUT:
        raise ProtocolError(400, f"unknown input {str(t.get('name'))[:60]!r}: model {task!r} has one input, {INPUT!r}")
    dt = DTYPES.get(t.get("datatype")) if isinstance(t.get("datatype"), str) else None
    if dt is None:
        raise ProtocolError(400, f"input {INPUT!r}: datatype must be one of {', '.join(DTYPES)}, got {str(t.get('datatype'))[:40]!r}")
    shape = t.get("shape")
    if shape not in ([1, n], [n]) or not all(type(s) is int for s in shape):
        raise ProtocolError(400, f"input {INPUT!r} of model {task!r} must have shape [1, {n}] (one request, {n} features), got {str(shape)[:60]}")
    size = _params(t, f"input {INPUT!r}").get("binary_data_size")
    if size is not None:
        if type(size) is not int or size != n * dt.itemsize or size > len(binary):
            raise ProtocolError(400, f"input {INPUT!r}: binary_data_size must be {n * dt.itemsize} ({n} x {t['datatype']}) "
                                     f"within the {len(binary)} bytes after the JSON header, got {str(size)[:40]}")  # fmt: skip
        arr, used = np.frombuffer(binary, dtype=dt, count=n), size
    else:
        data = t.get("data")
        if not isinstance(data, list):
            raise ProtocolError(400, f"input {INPUT!r} needs 'data' (a list of {n} numbers) or a binary_data_size parameter")
        if data and isinstance(data[0], list):  # row-major nested form, [[...]]: one row
            data = data[0] if len(data) == 1 else data
        arr = np.array(data) if len(data) == n else None  # numbers only: strings, nulls or lists give another kind
        if arr is None or arr.shape != (n,) or arr.dtype.kind not in "biuf":
            raise ProtocolError(400, f"input {INPUT!r} of model {task!r} must hold {n} numbers")
        used = 0
    # one reduction checks both (NaN fails the comparison), before the cast, which then cannot overflow
    if not float(np.abs(arr).max()) <= FP32_MAX:  # as a Python float: an FP16 array would compare in FP16
        raise ProtocolError(400, f"input {INPUT!r} holds numbers that are not finite (or overflow FP32)")
    return arr.astype(np.float32).reshape(1, n), used


def _outputs(spec, params: dict, task: str) -> tuple[tuple[str, bool], ...]:
    default = params.get("binary_data_output", False)
    if not isinstance(default, bool):
        raise ProtocolError(400, "parameter 'binary_data_output' must be true or false")
    if spec is None:
        return tuple((o, default) for o in OUTPUTS)
    if not isinstance(spec, list) or not spec:
        raise ProtocolError(400, f"'outputs' must be a non-empty list of {{'name': one of {', '.join(OUTPUTS)}}}")
    out = []
    for o in spec:
        name = o.get("name") if isinstance(o, dict) else None
        if name not in OUTPUTS:
            raise ProtocolError(400, f"unknown output {str(name)[:60]!r}: model {task!r} has outputs {', '.join(OUTPUTS)}")
        p = _params(o, f"output {name!r}")
        if "classification" in p:
            raise ProtocolError(400, "the classification extension is not supported: ask for 'probabilities'")
        binary = p.get("binary_data", default)
        if not isinstance(binary, bool):
            raise ProtocolError(400, f"output {name!r}: 'binary_data' must be true or false")
        out.append((name, binary))
    return tuple(out)


def encode_response(task: str, req: InferRequest, label: np.ndarray, probs: np.ndarray, parameters: dict) -> tuple[bytes, int | None]:
    """(body, JSON header length or None): the outputs asked for, JSON or binary.
    label: (1,) int64, probs: (1, n_classes) float32, from one row of a batch."""
    outs, blobs = [], []
    for name, binary in req.outputs:
        arr, dt = (label, "INT64") if name == "label" else (probs, "FP32")
        o = {"name": name, "datatype": dt, "shape": list(arr.shape)}
        if binary:
            raw = np.ascontiguousarray(arr, dtype="<i8" if dt == "INT64" else "<f4").tobytes()
            o["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            o["data"] = arr.ravel().tolist()
        outs.append(o)
    doc = {"model_name": task, "model_version": VERSION, "parameters": parameters, "outputs": outs}
    if req.id is not None:
        doc["id"] = req.id
    head = orjson.dumps(doc)
    return (head + b"".join(blobs), len(head)) if blobs else (head, None)


def server_metadata(node_id: str, version: str) -> dict:
    return {"name": "idn", "version": version, "extensions": ["binary_tensor_data"], "idn_node": node_id}


def model_metadata(task: str, n_features: int, n_classes: int, models: list[str]) -> dict:
    """The task's interface; ``idn_models`` names the models the IDN may serve it with."""
    return {
        "name": task, "versions": [VERSION], "platform": "idn",
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [1, n_features]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [1]},
                    {"name": "probabilities", "datatype": "FP32", "shape": [1, n_classes]}],
        "parameters": {"idn_models": ",".join(models)},
    }  # fmt: skip


def json_request(x, request_id: str | None = None) -> bytes:
    """A JSON infer request for one row (what ``idn load`` and the benchmarks send)."""
    doc = {"inputs": [{"name": INPUT, "shape": [1, len(x)], "datatype": "FP32", "data": [float(v) for v in x]}]}
    if request_id is not None:
        doc["id"] = request_id
    return orjson.dumps(doc)
