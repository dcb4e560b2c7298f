"""One module per engine/SDK. SDKs are imported lazily, inside the adapter modules."""
