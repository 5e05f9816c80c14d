"""xad dashboard: ``streamlit run dashboard.py``. Navigation only; every page is in pages/."""

import streamlit as st

st.set_page_config(page_title="xad — explanation audits", page_icon=":material/troubleshoot:",
                   layout="wide")

PAGES = {
    "xad": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Audits": [st.Page("pages/vaegan_audit.py", title="VAE-GAN audit (LIME / SHAP)",
                       icon=":material/query_stats:"),
               st.Page("pages/counterfactuals.py", title="Counterfactuals",
                       icon=":material/auto_fix_high:"),
               st.Page("pages/latent_diffusion.py", title="Latent diffusion (multi-class)",
                       icon=":material/blur_on:"),
               st.Page("pages/runs.py", title="Runs (history and comparison)", icon=":material/compare:")],
    "Data": [st.Page("pages/dataset_browser.py", title="Dataset browser",
                     icon=":material/photo_library:")],
}

st.navigation(PAGES).run()
