"""The machinery that keeps the views: the worker's subscription to the store, the runner that
applies batches to a set of views, and rebuilds with their atomic switch."""
