import { sendJson } from './http.ts';
import { openApiSchema } from './input-schema.ts';
import { findModel, modelRef, type ModelSpec } from './models.ts';
import { NOT_FOUND, sendProblem } from './problems.ts';
import { param, type Handler } from './routes.ts';

// GET /v1/models/{owner}/{name} and its versions: the model objects of Replicate's API, for the
// models the simulator knows (anything else is a 404). A version's openapi_schema is the input
// table validation uses.

/** The simulator's versions have no history of their own; one fixed date keeps answers stable. */
const VERSION_CREATED_AT = '2024-08-01T00:00:00.000Z';

function versionJson(model: ModelSpec, id: string): Record<string, unknown> {
  return { id, created_at: VERSION_CREATED_AT, cog_version: null, openapi_schema: openApiSchema(model) };
}

export const getModel: Handler = (request) => {
  const { ctx, res } = request;
  const model = findModel(param(request, 0), param(request, 1));
  if (model === undefined) return sendProblem(res, NOT_FOUND);
  sendJson(res, 200, {
    url: `https://replicate.com/${modelRef(model)}`,
    owner: model.owner,
    name: model.name,
    description: model.description,
    visibility: 'public',
    github_url: null,
    paper_url: null,
    license_url: null,
    run_count: ctx.engine.runCount(model),
    cover_image_url: null,
    default_example: null,
    is_official: model.official,
    latest_version: versionJson(model, model.versions[0]),
  });
};

export const getModelVersion: Handler = (request) => {
  const model = findModel(param(request, 0), param(request, 1));
  const id = param(request, 2);
  if (model === undefined || !model.versions.includes(id)) return sendProblem(request.res, NOT_FOUND);
  sendJson(request.res, 200, versionJson(model, id));
};
