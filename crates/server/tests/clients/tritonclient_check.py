"""NVIDIA's tritonclient (the KServe v2 / Triton client most users call) against a running
`modelsmith serve`, with the client's defaults: health, metadata, model config, statistics,
versioned requests, inference with binary and JSON tensors (FP32, and UINT8 raw pixels), and
bad requests. Prints one JSON object; crates/server/tests/server.rs checks it against the
Predictor. Usage: tritonclient_check.py HOST:PORT MODEL INPUTS.json (INPUTS: [n, h, w, c]
preprocessed values) [GRPC_HOST:PORT]: with the last, the same over gRPC too (raw input
contents, as tritonclient.grpc sends them), plus a raw content of the wrong length and a message
over the server's size limit."""
import json
import sys

import numpy as np
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

url, model, inputs_path = sys.argv[1], sys.argv[2], sys.argv[3]
with open(inputs_path) as f:
    inputs = np.array(json.load(f), dtype=np.float32)
client = http.InferenceServerClient(url)
out = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready(model),
    "model_ready_v1": client.is_model_ready(model, "1"),
    "model_ready_v2": client.is_model_ready(model, "2"),
    "server_metadata": client.get_server_metadata(),
    "model_metadata": client.get_model_metadata(model),
    "model_metadata_v1": client.get_model_metadata(model, "1"),
    "model_config": client.get_model_config(model),
}


def infer(data, datatype="FP32", binary=True, version="", outputs=None):
    tensor = http.InferInput("input", list(data.shape), datatype)
    tensor.set_data_from_numpy(data, binary_data=binary)
    result = client.infer(model, [tensor], model_version=version, outputs=outputs)
    return result.as_numpy("probabilities").tolist()


pixels = np.round(inputs * 255).astype(np.uint8)
out["binary"] = infer(inputs)
out["json"] = infer(inputs, binary=False)
out["versioned"] = infer(inputs, version="1")
out["uint8"] = infer(pixels, datatype="UINT8")
out["json_output"] = infer(
    inputs, outputs=[http.InferRequestedOutput("probabilities", binary_data=False)]
)


def status(call):
    try:
        call()
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}
    return {"status": "200"}


out["errors"] = {
    "wrong_shape": status(lambda: infer(inputs.reshape(len(inputs), -1))),
    "wrong_datatype": status(lambda: infer(inputs.astype(np.int32), datatype="INT32")),
    "unknown_model": status(lambda: client.get_model_metadata("no-such-model")),
    "unknown_version": status(lambda: infer(inputs, version="2")),
}
out["statistics"] = client.get_inference_statistics(model)

if len(sys.argv) > 4:
    import tritonclient.grpc as grpc

    g = grpc.InferenceServerClient(sys.argv[4])

    def grpc_infer(data, datatype="FP32", version="", raw=None):
        tensor = grpc.InferInput("input", list(data.shape), datatype)
        tensor.set_data_from_numpy(data)
        if raw is not None:
            tensor._raw_content = raw  # a length that disagrees with the shape
        result = g.infer(model, [tensor], model_version=version)
        return result.as_numpy("probabilities").tolist()

    def grpc_status(call):
        try:
            call()
        except InferenceServerException as e:
            return {"status": e.status(), "message": e.message()}
        return {"status": "OK"}

    big = np.zeros((int(sys.argv[5]) if len(sys.argv) > 5 else 1,) + inputs.shape[1:], np.float32)
    out["grpc"] = {
        "live": g.is_server_live(),
        "ready": g.is_server_ready(),
        "model_ready": g.is_model_ready(model),
        "model_ready_v1": g.is_model_ready(model, "1"),
        "model_ready_v2": g.is_model_ready(model, "2"),
        "server_metadata": g.get_server_metadata(as_json=True),
        "model_metadata": g.get_model_metadata(model, as_json=True),
        "raw": grpc_infer(inputs),
        "versioned": grpc_infer(inputs, version="1"),
        "uint8": grpc_infer(pixels, datatype="UINT8"),
        "errors": {
            "wrong_shape": grpc_status(lambda: grpc_infer(inputs.reshape(len(inputs), -1))),
            "wrong_datatype": grpc_status(
                lambda: grpc_infer(inputs.astype(np.int32), datatype="INT32")
            ),
            "wrong_length": grpc_status(
                lambda: grpc_infer(inputs, raw=inputs.tobytes()[:-4])
            ),
            "too_large": grpc_status(lambda: grpc_infer(big)),
            "unknown_model": grpc_status(lambda: g.get_model_metadata("no-such-model")),
            "unknown_version": grpc_status(lambda: grpc_infer(inputs, version="2")),
        },
        "still_live": g.is_server_live(),
    }
print(json.dumps(out))
