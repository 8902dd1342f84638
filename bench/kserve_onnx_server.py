"""The Python peer for bench/serve_protocols.sh: KServe's own ModelServer (the `kserve` package
from PyPI) serving an ONNX export through onnxruntime, REST v2 and gRPC v2, one process.
Usage: kserve_onnx_server.py MODEL.onnx HTTP_PORT GRPC_PORT"""
import sys

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxDigits(Model):
    def __init__(self, path):
        super().__init__("digits")
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.ready = True

    def predict(self, payload: InferRequest, headers=None, response_headers=None):
        x = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        (y,) = self.session.run(["probabilities"], {"input": x})
        rest = not payload.from_grpc
        out = InferOutput(name="probabilities", shape=list(y.shape), datatype="FP32")
        # Binary outputs over REST when the client asks (tritonclient does by default).
        binary = rest and payload.use_binary_outputs
        out.set_data_from_numpy(y, binary_data=binary)
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id,
                             from_grpc=payload.from_grpc, use_binary_outputs=binary)


if __name__ == "__main__":
    path, http_port, grpc_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ModelServer(http_port=http_port, grpc_port=grpc_port, workers=1).start([OnnxDigits(path)])
