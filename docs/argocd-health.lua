-- Argo CD health check for SecureRedis (secureredis.io/v1alpha1).
--
-- It reads the operator's kstatus conditions:
--   Degraded     when Stalled is True: the spec needs a fix, and the
--                message names the field;
--   Healthy      when Ready is True for the current generation;
--   Progressing  otherwise, with the message of Ready (or Reconciling).
-- A status written for an older generation counts as Progressing, so a
-- sync is neither Healthy nor Degraded before the operator has seen the new
-- spec. This is the order kstatus uses too.
--
-- Install it in the argocd-cm ConfigMap under the key
-- resource.customizations.health.secureredis.io_SecureRedis (see
-- docs/operations.md). Argo CD runs it with gopher-lua (Lua 5.1), so it
-- uses nothing newer than Lua 5.1; tests/unit/test_argocd_health.py runs it
-- with lua5.4.

local health = { status = "Progressing", message = "Waiting for the operator to report status" }

local function condition(conditions, wanted)
  for _, entry in ipairs(conditions) do
    if entry.type == wanted then
      return entry
    end
  end
  return nil
end

local function current(entry, generation)
  return generation == nil or entry.observedGeneration == nil
    or entry.observedGeneration == generation
end

if obj.status == nil or obj.status.conditions == nil then
  return health
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local conditions = obj.status.conditions

if generation ~= nil and obj.status.observedGeneration ~= generation then
  health.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return health
end

local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  health.status = "Degraded"
  health.message = stalled.message or stalled.reason or "Stalled"
  return health
end

local ready = condition(conditions, "Ready")
if ready ~= nil and ready.status == "True" and current(ready, generation) then
  health.status = "Healthy"
  health.message = ready.message or "Ready"
  return health
end

if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  health.message = ready.message
else
  local reconciling = condition(conditions, "Reconciling")
  if reconciling ~= nil and reconciling.message ~= nil then
    health.message = reconciling.message
  end
end
return health
