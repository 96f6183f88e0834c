# Optional container image of the app, on the official Azure Functions Python base image. For hosts that
# run Functions containers (Azure Container Apps, Functions Premium/Dedicated, AKS with KEDA); the Flex
# Consumption deployment in infra/ does not use it. See docs/deploy.md, "Container image".
#
#   docker build -t aml-ops-functions .
#   docker run -p 8080:80 -e AzureWebJobsStorage__blobServiceUri=... aml-ops-functions
FROM mcr.microsoft.com/azure-functions/python:4-python3.11

ENV AzureWebJobsScriptRoot=/home/site/wwwroot \
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first, so code changes reuse this layer; requirements.txt pins every transitive package with
# its hashes, so the image holds exactly the locked set.
COPY requirements.txt /tmp/
RUN pip install --require-hashes -r /tmp/requirements.txt

# build.json (optional: `bash scripts/build-info.sh build.json` before `docker build`) names the commit that
# /api/health reports; without it the image reports "unknown".
COPY function_app.py host.json requirements.txt build.jso[n] /home/site/wwwroot/
COPY shared/ /home/site/wwwroot/shared/
COPY triggers/ /home/site/wwwroot/triggers/
COPY orchestrations/ /home/site/wwwroot/orchestrations/
COPY activities/ /home/site/wwwroot/activities/
COPY models/ /home/site/wwwroot/models/
