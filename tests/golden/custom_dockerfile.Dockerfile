ARG BASE_IMAGE=nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04
FROM nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04
ARG PYTHON_VERSION=3.10
ARG NOTEBOOK_NAME=Custom_Notebook.ipynb
LABEL org.example.maintainer="Example Lab"
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends python3.10 python3.10-venv
RUN python3.10 -m venv /opt/venv && /opt/venv/bin/pip install jupyterlab==3.6.0 ipykernel ipywidgets papermill
COPY requirements.txt /opt/hpc-dl4mic/requirements.txt
RUN /opt/venv/bin/pip install -r /opt/hpc-dl4mic/requirements.txt
ENV PATH=/opt/venv/bin:$PATH
EXPOSE 8888
WORKDIR /opt/hpc-dl4mic/notebooks
CMD ["jupyter", "lab", "--no-browser"]
