"""Generated code of the Open Inference Protocol (proto/inference/, `make proto`): the
``inference.GRPCInferenceService`` of KServe v2 and Triton, wire-compatible with tritonclient."""
