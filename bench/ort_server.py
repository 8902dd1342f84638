#!/usr/bin/env python3
"""The peer for `modelsmith serve` in the load test: the same ONNX file (from
`modelsmith export --format onnx`) behind onnxruntime, serving the same KServe v2 requests.

    python bench/ort_server.py --onnx model.onnx --name digits --port 8081 [--threads 2]

Endpoints: GET /v2/health/ready, GET /v2/health/live, POST /v2/models/{name}/infer
(input `input` FP32 [B,28,28,1], output `probabilities`), POST /predict (a JSON array: one
example). A raw ASGI app under uvicorn (httptools + uvloop) with orjson: the fastest plain
Python stack available, so the comparison is with onnxruntime rather than with a slow web
framework. One process; onnxruntime uses --threads intra-op threads. No batching across requests.
Binds loopback only.
"""
import argparse

import numpy as np
import onnxruntime as ort
import orjson
import uvicorn


def make_app(session, name, classes):
    input_name = session.get_inputs()[0].name
    infer_path = f"/v2/models/{name}/infer"

    async def read_body(receive):
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    async def send_json(send, status, obj):
        body = orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method == "GET" and path in ("/v2/health/ready", "/v2/health/live"):
            await send_json(send, 200, {"ready": True})
            return
        if method != "POST" or path not in (infer_path, "/predict"):
            await send_json(send, 404, {"error": f"no endpoint at {path}"})
            return
        try:
            request = orjson.loads(await read_body(receive))
            if path == infer_path:
                tensor = request["inputs"][0]
                x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
            else:
                x = np.asarray(request, dtype=np.float32).reshape(1, 28, 28, 1)
        except Exception as e:  # bad input: a 400 with a JSON error, as the Rust server does
            await send_json(send, 400, {"error": str(e)})
            return
        probabilities = session.run(None, {input_name: x})[0]
        if path == infer_path:
            await send_json(send, 200, {"model_name": name, "outputs": [{
                "name": "probabilities", "datatype": "FP32",
                "shape": list(probabilities.shape), "data": probabilities.ravel()}]})
        else:
            best = int(probabilities[0].argmax())
            await send_json(send, 200, {"predictions": [{
                "class": classes[best], "class_index": best,
                "probability": float(probabilities[0, best])}]})

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--name", default="digits")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    classes = orjson.loads(metadata.get("modelsmith.class_names", "[]")) or [str(i) for i in range(10)]
    uvicorn.run(make_app(session, args.name, classes), host="127.0.0.1", port=args.port,
                loop="uvloop", http="httptools", log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
