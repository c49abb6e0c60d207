"""``python -m spri_dspy.embedded``: llama.cpp's OpenAI-compatible server serving the embedded model
(:func:`spri_dspy.runtime.embedded.serve_llama_cpp`; the engine itself is :mod:`spri_dspy.runtime.embedded`)."""

if __name__ == "__main__":
    from spri_dspy.runtime.embedded import serve_llama_cpp

    serve_llama_cpp()
