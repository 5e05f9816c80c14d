"""Plotly figures as pure functions of results, one module per page's figures."""
