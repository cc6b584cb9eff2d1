"""Streamlit glue shared by the pages: cached loaders and widgets. The library stays in seg_core."""
